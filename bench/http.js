#!/usr/bin/env node
/**
 * Benchmark: the readings endpoint against bare HTTP and against the pipeline users build today, each pair
 * in one Node-RED runtime (the backend of `npm start`, bench/lib/server.js), driven by autocannon with a
 * fresh (device, SEQN) per request. Only 2xx answers count; afterwards the stored rows must equal them.
 *
 * Runtime A (aes-key hmac-sha256, the default):
 *   bare           http in -> http response
 *   readings       the shipped route: decrypt (HMAC) -> replay guard (persist with-next-write) -> durable log
 *   peer durable   function node with crypto-js (as the seed's server decrypted) -> SEQN check in flow
 *                  context -> node-red-node-sqlite INSERT -> http response
 *   peer volatile  the same without storage (nothing durable)
 * Runtime B (aes-key auth none): bare, readings.
 *
 * With --stages, runtime A also runs the readings route cut short after each of its stages, on routes of their own
 * (/bench/stage-N/:deviceid/readings, the shipped flow's config nodes): what each stage adds to bare's CPU.
 *   decrypt        http in -> aes-decrypt -> http response
 *   + guard        ... -> replay-guard -> http response
 *   + log          ... -> device-registry log -> http response (the reading stored)
 *   + answer       ... -> the function node that picks the answer -> http response (the route without its middleware)
 *   three switches + log, then the three switch nodes that picked the answer before the function node did
 *
 * Besides requests per second, each round measures the CPU time the Node-RED process spent (user + system, from
 * /proc/<pid>/stat: every thread, the SQLite pool included) per 2xx answer. On a shared machine the throughput of
 * consecutive rounds moves with the neighbours' load; CPU per request much less, so "our CPU per reading / bare's"
 * is the steadier figure. Rounds are short and the pipelines interleaved (their order rotates), and the spread of
 * the bare route across rounds is reported as the machine's noise.
 *
 * Usage: node bench/http.js [--duration 2] [--rounds 20] [--connections 20] [--stages] [--json]
 * Exports run(options) for bench/run.js.
 */
'use strict';
const path = require('node:path');
const crypto = require('node:crypto');
const lib = require('../dist/nodes/lib');
const { startBackend } = require('../test/support/backend');
const { tempDir, querySqlite } = require('../test/support/tmp');
const { median, fmt, arg, benchMain } = require('./lib/runtime');

/** The least and greatest of a round's figures, and the middle half (quartiles). */
function spread(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  return { min: s[0], q1: q(0.25), q3: q(0.75), max: s[s.length - 1] };
}
const { readingsLoad, cannon, BARE_FLOW, addFlow, peerFunction } = require('./lib/load');

const SERVER = path.join(__dirname, 'lib', 'server.js');
const fs = require('node:fs');

/** Clock ticks per second of /proc/<pid>/stat's times (getconf CLK_TCK; 100 on Linux). */
const CLK_TCK = Number(require('node:child_process').execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time the process has used so far (user + system, all its threads), in ms. */
function cpuMs(pid) {
  // Fields after the command name (which may hold spaces, so the split starts after its closing parenthesis).
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the state.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** The seed-style pipeline as a flow: decrypt with crypto-js in a function node, SEQN in context, optional sqlite INSERT. */
function peerFlow(keyHex, dbFile) {
  const fn = peerFunction(keyHex, {
    idFrom: 'msg.req.params.deviceid',
    refuse: "msg.statusCode = 400; msg.payload = { status: 'NOK' }; return [null, msg];",
    accept: 'return [msg, null];',
  });
  const reply = "msg.payload = { status: 'OK' };\nreturn msg;";
  const nodes = (name, durable) => {
    const p = `bench-peer-${name}`;
    return [
      { id: `${p}-in`, type: 'http in', url: `/bench/peer-${name}/:deviceid/readings`, method: 'post', upload: false, wires: [[`${p}-fn`]] },
      { id: `${p}-fn`, type: 'function', func: fn, outputs: 2, wires: [[durable ? `${p}-db` : `${p}-ok`], [`${p}-out`]] },
      ...(durable ? [{ id: `${p}-db`, type: 'sqlite', mydb: 'bench-peer-sqlitedb', sqlquery: 'prepared', sql: 'INSERT INTO readings (deviceid, seqn, payload) VALUES ($deviceid, $seqn, $payload)', wires: [[`${p}-ok`]] }] : []),
      { id: `${p}-ok`, type: 'function', func: reply, outputs: 1, wires: [[`${p}-out`]] },
      { id: `${p}-out`, type: 'http response', statusCode: '', headers: {}, wires: [] },
    ];
  };
  return [
    { id: 'bench-peer-sqlitedb', type: 'sqlitedb', db: dbFile, mode: 'RWC' },
    ...BARE_FLOW,
    ...nodes('durable', true),
    ...nodes('volatile', false),
  ];
}

/**
 * The stage routes (see --stages): the readings route cut after each stage, with the shipped flow's config nodes and
 * node settings; the last is the shipped route's nodes. "three switches" is the answer as the flow routed it before:
 * three switch nodes where the function node is.
 */
const STAGES = ['decrypt', '+ guard', '+ log', '+ answer', 'three switches'];
function stageFlow() {
  const shipped = require('../flows/esp-e2ee.json');
  const node = (id) => {
    const { id: _, z, x, y, g, wires, ...settings } = shipped.find((n) => n.id === id);
    return { ...settings, outputs: wires.length };
  };
  const switches = [
    { type: 'switch', property: 'statusCode', propertyType: 'msg', rules: [{ t: 'btwn', v: '400', vt: 'num', v2: '499', v2t: 'num' }, { t: 'else' }], checkall: 'false', outputs: 2, out: 1 },
    { type: 'switch', property: 'answer', propertyType: 'msg', rules: [{ t: 'eq', v: 'config', vt: 'str' }, { t: 'else' }], checkall: 'false', outputs: 2, out: 1 },
    { type: 'switch', property: 'transport', propertyType: 'msg', rules: [{ t: 'neq', v: 'mqtt', vt: 'str' }], checkall: 'false', outputs: 1 },
  ];
  const route = ['decrypt', 'guard', 'reg-log'].map(node);
  const chains = [route.slice(0, 1), route.slice(0, 2), route, [...route, { ...node('answer-reading'), out: 2 }], [...route, ...switches]];
  const nodes = [];
  chains.forEach((chain, n) => {
    const p = `bench-stage-${n}`;
    const ids = chain.map((_, i) => `${p}-${i}`);
    // The route's body is parsed by the http in node here (the package's raw body reader serves the shipped path).
    nodes.push({ id: `${p}-in`, type: 'http in', url: `/bench/stage-${n}/:deviceid/readings`, method: 'post', upload: false, wires: [[ids[0]]] });
    chain.forEach(({ outputs = 1, out = 0, ...settings }, i) => {
      const wires = Array.from({ length: outputs }, () => []);
      wires[out] = [ids[i + 1] ?? `${p}-out`];
      nodes.push({ id: ids[i], ...settings, outputs, wires });
    });
    nodes.push({ id: `${p}-out`, type: 'http response', statusCode: '', headers: {}, wires: [] });
  });
  return nodes;
}

async function createPeerTable(file) {
  const sqlite3 = require('sqlite3');
  await new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, (err) => {
      if (err) return reject(err);
      db.run('CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, deviceid TEXT, seqn INTEGER, payload TEXT)', (e) => db.close(() => (e ? reject(e) : resolve())));
    });
  });
}

/**
 * One runtime: starts the backend, adds the bench flows, runs the pipelines in rotated order for the rounds.
 * @returns {Promise<{pipelines: object, stored: object}>}
 */
async function runRuntime({ auth, pipelines, duration, rounds, connections, log }) {
  const stages = pipelines.filter((p) => STAGES.includes(p));
  const tmp = tempDir('esp-e2ee-bench-http-');
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const backend = await startBackend({ script: SERVER, dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_AUTH: auth, E2EE_LOG_LEVEL: 'warn', E2EE_RATE_LIMIT: 'off' } });
  try {
    const peerDb = path.join(tmp.dir, 'peer.sqlite');
    await createPeerTable(peerDb);
    await addFlow(backend.adminUrl, TOKEN, 'bench', [...peerFlow(KEY, peerDb), ...(stages.length ? stageFlow() : [])]);

    const url = backend.url;
    // npm start's scope: a key per device under the master with hmac-sha256, one shared key with none.
    const shippedKey = auth === 'none' ? lib.parseKey('hex', KEY, auth) : new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), auth);
    const peerKey = lib.parseKey('hex', KEY, 'none');
    const loads = {
      readings: await readingsLoad({ url, key: shippedKey, prefix: 'B1' }),
      'peer durable': await readingsLoad({ url, key: peerKey, prefix: 'B2', register: false, path: (id) => `/bench/peer-durable/${id}/readings` }),
      'peer volatile': await readingsLoad({ url, key: peerKey, prefix: 'B3', register: false, path: (id) => `/bench/peer-volatile/${id}/readings` }),
    };
    // Each stage route its own registered devices (their SEQNs go on from their own last).
    for (const name of stages) {
      const n = STAGES.indexOf(name);
      loads[name] = await readingsLoad({ url, key: shippedKey, prefix: `C${n}`, path: (id) => `/bench/stage-${n}/${id}/readings` });
    }
    const bareBody = JSON.stringify(lib.encryptToWire(shippedKey.material ? shippedKey.material('x') : shippedKey, Buffer.from('{"data":{"a0":1},"SEQN":1}'), 'x'));
    const options = (name) => (name === 'bare'
      ? { url: `${url}/bench/bare`, method: 'POST', headers: { 'content-type': 'application/json' }, body: bareBody }
      : { url, requests: [loads[name].request] });
    const results = Object.fromEntries(pipelines.map((p) => [p, { rounds: [], ok: 0 }]));
    // Warm-up: JIT and connections, not measured (its 2xx are counted for the stored-rows check).
    for (const name of pipelines) results[name].ok += (await cannon({ ...options(name), connections, duration: Math.min(2, duration) }))['2xx'];

    for (let round = 0; round < rounds; round++) {
      const order = pipelines.map((_, i) => pipelines[(i + round) % pipelines.length]);
      for (const name of order) {
        const cpuBefore = cpuMs(backend.pid);
        const r = await cannon({ ...options(name), connections, duration });
        const cpu = cpuMs(backend.pid) - cpuBefore;
        const ok = r['2xx'];
        results[name].ok += ok;
        const bad = r.non2xx + r.errors + r.timeouts;
        if (bad > 0) throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
        results[name].rounds.push({ rps: ok / duration, p50: r.latency.p50, p99: r.latency.p99, cpuUs: (cpu * 1000) / Math.max(ok, 1) });
        log?.(`  ${auth} round ${round + 1} ${name}: ${fmt(ok / duration)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, CPU ${((cpu * 1000) / Math.max(ok, 1)).toFixed(0)} µs/req`);
      }
    }
    // Every 2xx of a storing pipeline is a stored row (warm-up included), and none is stored twice.
    const db = path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite');
    await backend.stop();
    const stored = {};
    const count = async (file, prefix) => (await querySqlite(file, 'SELECT count(*) AS n, count(DISTINCT deviceid || \'/\' || seqn) AS d FROM readings WHERE deviceid LIKE ?', [`5C:CF:7F:${prefix}:%`]))[0];
    if (pipelines.includes('readings')) stored.readings = { ...(await count(db, 'B1')), ok: results.readings.ok, sent: loads.readings.sent };
    if (pipelines.includes('peer durable')) stored['peer durable'] = { ...(await count(peerDb, 'B2')), ok: results['peer durable'].ok, sent: loads['peer durable'].sent };
    return { results, stored };
  } finally {
    await backend.stop();
    tmp.cleanup();
  }
}

/** Both runtimes; medians and ratios to bare of the same runtime. */
async function run({ duration = 2, rounds = 20, connections = 20, stages = false, log = console.log } = {}) {
  const a = await runRuntime({ auth: 'hmac-sha256', pipelines: ['bare', 'readings', 'peer durable', 'peer volatile', ...(stages ? STAGES : [])], duration, rounds, connections, log });
  const b = await runRuntime({ auth: 'none', pipelines: ['bare', 'readings'], duration, rounds, connections, log });
  const summarize = (runtime, name) => {
    const rs = runtime.results[name].rounds;
    const bare = runtime.results.bare.rounds;
    return {
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      ratioToBare: median(rs.map((r, i) => r.rps / bare[i].rps)),
      p99ToBare: median(rs.map((r, i) => r.p99 / Math.max(bare[i].p99, 1))),
      // CPU per 2xx (µs), and per round against bare's in the same round (the steady figure).
      cpuUs: median(rs.map((r) => r.cpuUs)),
      cpuToBare: median(rs.map((r, i) => r.cpuUs / bare[i].cpuUs)),
      cpuToBareSpread: spread(rs.map((r, i) => r.cpuUs / bare[i].cpuUs)),
      rpsSpread: spread(rs.map((r) => r.rps)),
    };
  };
  const rows = {
    bare: summarize(a, 'bare'),
    'readings (hmac-sha256)': summarize(a, 'readings'),
    'readings (auth none)': summarize(b, 'readings'),
    'peer durable (crypto-js + context + node-red-node-sqlite)': summarize(a, 'peer durable'),
    'peer volatile (same, no storage)': summarize(a, 'peer volatile'),
  };
  // The stages: each row's CPU per reading against bare's, and what the stage added to the one before.
  const stageRows = stages ? Object.fromEntries(STAGES.map((name) => [name, summarize(a, name)])) : undefined;
  const vsPeer = median(a.results.readings.rounds.map((r, i) => r.rps / a.results['peer durable'].rounds[i].rps));
  const cpuVsPeer = median(a.results.readings.rounds.map((r, i) => a.results['peer durable'].rounds[i].cpuUs / r.cpuUs));
  const stored = { 'readings (hmac-sha256)': a.stored.readings, 'readings (auth none)': b.stored.readings, 'peer durable': a.stored['peer durable'] };
  // Every 2xx is stored, nothing is stored twice, and nothing but what was sent (requests cut off when a
  // round ends may be stored without their answer being counted).
  for (const [name, s] of Object.entries(stored)) {
    if (s.n < s.ok || s.n > s.sent || s.d !== s.n) throw new Error(`${name}: ${s.ok} answered 2xx of ${s.sent} sent, ${s.n} rows stored (${s.d} distinct)`);
  }
  return { config: { duration, rounds, connections }, rows, ...(stageRows ? { stages: stageRows } : {}), readingsVsPeerDurable: vsPeer, peerCpuVsReadings: cpuVsPeer, stored };
}

if (require.main === module) {
  const duration = arg('duration', 2);
  const rounds = arg('rounds', 20);
  const connections = arg('connections', 20);
  const stages = process.argv.includes('--stages');
  const json = process.argv.includes('--json');
  benchMain(() => run({ duration, rounds, connections, stages, log: json ? undefined : console.log }), (r) => {
    console.log(`HTTP: autocannon ${connections} connections, ${duration} s x ${rounds} rounds, Node ${process.version}`);
    for (const [name, row] of Object.entries(r.rows)) {
      console.log(`  ${name.padEnd(58)} ${fmt(row.rps).padStart(8)} req/s (rounds ${fmt(row.rpsSpread.min)}-${fmt(row.rpsSpread.max)})  p50 ${row.p50} ms  p99 ${row.p99} ms  ${row.ratioToBare.toFixed(2)} of bare  CPU ${row.cpuUs.toFixed(0)} µs/req = ${row.cpuToBare.toFixed(2)}x bare's (rounds ${row.cpuToBareSpread.min.toFixed(2)}-${row.cpuToBareSpread.max.toFixed(2)})`);
    }
    if (r.stages) {
      console.log('  the readings route cut after each stage (CPU per reading against bare\'s, and what the stage adds):');
      let before = 1;
      const { 'three switches': switches, ...stages } = r.stages;
      for (const [name, row] of Object.entries(stages)) {
        console.log(`    ${name.padEnd(12)} ${row.cpuUs.toFixed(0).padStart(5)} µs/req = ${row.cpuToBare.toFixed(2)}x bare's (+${(row.cpuToBare - before).toFixed(2)})`);
        before = row.cpuToBare;
      }
      console.log(`    ${'+ middleware'.padEnd(12)} the shipped route: ${r.rows['readings (hmac-sha256)'].cpuToBare.toFixed(2)}x bare's (+${(r.rows['readings (hmac-sha256)'].cpuToBare - before).toFixed(2)})`);
      console.log(`    three switch nodes instead of the function node: ${switches.cpuUs.toFixed(0)} µs/req = ${switches.cpuToBare.toFixed(2)}x bare's (+${(switches.cpuToBare - r.stages['+ log'].cpuToBare).toFixed(2)} over + log)`);
    }
    console.log(`  readings (hmac) / peer durable: ${r.readingsVsPeerDurable.toFixed(2)}x; stored rows vs 2xx answers: ${JSON.stringify(r.stored)}`);
  });
}

module.exports = { run };
