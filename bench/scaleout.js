#!/usr/bin/env node
/**
 * Benchmark: the readings route on PostgreSQL.
 *
 * 1. One instance on PostgreSQL against one on SQLite, in the same run: two `npm start` backends side by side,
 *    measured in turn (rotated each round), readings/s of each and their ratio.
 * 2. Through HAProxy with 1, 2 and 3 instances (`npm run cluster`), on one PostgreSQL.
 * 3. What each reading costs the database: statements (each one round trip) and transactions per reading, the
 *    mean batch sizes of the two commit queues, from pg_stat_statements and pg_stat_database; and the CPU seconds
 *    PostgreSQL and the Node-RED processes used (from /proc), for the arithmetic in docs/benchmarks.md.
 *
 * The PostgreSQL server is a throwaway one (app/postgres.ts) with its defaults (fsync and synchronous_commit on)
 * and pg_stat_statements loaded. Every 2xx must be a stored row, none stored twice.
 *
 * Usage: node bench/scaleout.js [--duration 10] [--rounds 3] [--connections 20] [--instances 3] [--json]
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const lib = require('../dist/nodes/lib');
const { startBackend } = require('../test/support/backend');
const { startCluster } = require('../test/support/cluster');
const { startPostgres } = require('../dist/app/postgres');
const { tempDir, querySqlite } = require('../test/support/tmp');
const { median, fmt, arg, benchMain } = require('./lib/runtime');
const { readingsLoad, cannon } = require('./lib/load');

const SERVER = path.join(__dirname, 'lib', 'server.js');
const TICKS = 100; // clock ticks per second in /proc/<pid>/stat

/** CPU seconds (user + system) of a process so far. */
function cpuOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return 0;
  }
}

/** The process ids whose parent is `ppid`, and theirs (a process tree). */
function tree(ppid) {
  const all = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return { pid: Number(pid), ppid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) };
    } catch {
      return undefined;
    }
  }).filter(Boolean);
  const out = [ppid];
  for (let i = 0; i < out.length; i++) for (const p of all) if (p.ppid === out[i]) out.push(p.pid);
  return out;
}

const cpuOfTree = (pid) => tree(pid).reduce((sum, p) => sum + cpuOf(p), 0);

/** PostgreSQL's counters: statements by kind, transactions committed. */
async function dbCounters(pg, url) {
  const [statements] = await pg.query(url, `SELECT
      coalesce(sum(calls), 0) AS calls,
      coalesce(sum(calls) FILTER (WHERE query ILIKE '%INSERT INTO readings%'), 0) AS reading_inserts,
      coalesce(sum(rows) FILTER (WHERE query ILIKE '%INSERT INTO readings%'), 0) AS reading_rows,
      coalesce(sum(calls) FILTER (WHERE query ILIKE '%FROM e2ee_lock_uplinks%'), 0) AS replay_batches
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`);
  const [db] = await pg.query(url, 'SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()');
  return { ...Object.fromEntries(Object.entries(statements).map(([k, v]) => [k, Number(v)])), commits: Number(db.xact_commit) };
}

function diff(a, b) {
  return Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - a[k]]));
}

async function pgCpu(pg) {
  const pid = Number(fs.readFileSync(path.join(pg.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return cpuOfTree(pid);
}

async function countStored(pg, url, prefix) {
  const [r] = await pg.query(url, "SELECT count(*) AS n, count(DISTINCT (deviceid, seqn)) AS d FROM readings WHERE deviceid LIKE $1", [`5C:CF:7F:${prefix}:%`]);
  return { n: Number(r.n), d: Number(r.d) };
}

async function run({ duration = 10, rounds = 3, connections = 20, instances = 3, log = console.log } = {}) {
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
  const env = { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn', E2EE_RATE_LIMIT: 'off' };
  const pg = await startPostgres({ settings: { shared_preload_libraries: "'pg_stat_statements'", 'pg_stat_statements.track': "'top'" } });
  const tmp = tempDir('esp-e2ee-bench-scaleout-');
  try {
    // --- 1. one instance: SQLite against PostgreSQL --------------------------------------------------------
    const single = await pg.createDatabase('single');
    await pg.query(single, 'CREATE EXTENSION pg_stat_statements');
    const sqliteBackend = await startBackend({ script: SERVER, dataDir: tmp.file('sqlite'), env });
    const pgBackend = await startBackend({ script: SERVER, dataDir: tmp.file('pg'), env: { ...env, E2EE_DATABASE_URL: single } });
    const backends = { sqlite: sqliteBackend, postgresql: pgBackend };
    const loads = {
      sqlite: await readingsLoad({ url: sqliteBackend.url, key: ring, prefix: 'D1' }),
      postgresql: await readingsLoad({ url: pgBackend.url, key: ring, prefix: 'D2' }),
    };
    const ok = { sqlite: 0, postgresql: 0 };
    const perRound = { sqlite: [], postgresql: [] };
    let work;
    let sqliteCpu;
    for (const name of ['sqlite', 'postgresql']) ok[name] += (await cannon({ url: backends[name].url, requests: [loads[name].request], connections, duration: Math.min(2, duration) }))['2xx'];
    for (let round = 0; round < rounds; round++) {
      for (const name of round % 2 ? ['postgresql', 'sqlite'] : ['sqlite', 'postgresql']) {
        const before = name === 'postgresql' ? { db: await dbCounters(pg, single), pg: await pgCpu(pg), node: cpuOf(pgBackend.pid) } : { node: cpuOf(sqliteBackend.pid) };
        const r = await cannon({ url: backends[name].url, requests: [loads[name].request], connections, duration });
        if (r.non2xx + r.errors + r.timeouts > 0) throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
        ok[name] += r['2xx'];
        perRound[name].push(r['2xx'] / duration);
        log?.(`  one instance, round ${round + 1}, ${name}: ${fmt(r['2xx'] / duration)} readings/s, p99 ${r.latency.p99} ms`);
        if (name === 'sqlite' && sqliteCpu === undefined) sqliteCpu = ((cpuOf(sqliteBackend.pid) - before.node) * 1000) / r['2xx'];
        if (name === 'postgresql' && !work) {
          const d = diff(before.db, await dbCounters(pg, single));
          const readings = r['2xx'];
          work = {
            readings,
            statementsPerReading: d.calls / readings,
            commitsPerReading: d.commits / readings,
            readingBatch: d.reading_rows / Math.max(1, d.reading_inserts),
            replayBatch: readings / Math.max(1, d.replay_batches),
            pgCpuS: (await pgCpu(pg)) - before.pg,
            nodeCpuS: cpuOf(pgBackend.pid) - before.node,
            seconds: duration,
          };
          work.pgCpuPerReadingMs = (work.pgCpuS * 1000) / readings;
          work.nodeCpuPerReadingMs = (work.nodeCpuS * 1000) / readings;
        }
      }
    }
    await sqliteBackend.stop();
    await pgBackend.stop();
    const stored = {
      sqlite: { ...(await querySqlite(path.join(tmp.file('sqlite'), 'node-red', 'esp-e2ee.sqlite'), "SELECT count(*) AS n, count(DISTINCT deviceid || '/' || seqn) AS d FROM readings WHERE deviceid LIKE '5C:CF:7F:D1:%'"))[0], ok: ok.sqlite, sent: loads.sqlite.sent },
      postgresql: { ...(await countStored(pg, single, 'D2')), ok: ok.postgresql, sent: loads.postgresql.sent },
    };
    for (const [name, s] of Object.entries(stored)) {
      if (s.n < s.ok || s.n > s.sent || s.d !== s.n) throw new Error(`${name}: ${s.ok} answered 2xx of ${s.sent} sent, ${s.n} rows stored (${s.d} distinct)`);
    }
    work.sqliteNodeCpuPerReadingMs = sqliteCpu;
    const one = {
      sqlite: median(perRound.sqlite),
      postgresql: median(perRound.postgresql),
      ratio: median(perRound.postgresql.map((v, i) => v / perRound.sqlite[i])),
      work,
      stored,
    };

    // --- 2. through HAProxy with 1..N instances ---------------------------------------------------------------
    const balanced = [];
    for (let n = 1; n <= instances; n++) {
      const url = await pg.createDatabase(`cluster${n}`);
      await pg.query(url, 'CREATE EXTENSION pg_stat_statements');
      const cluster = await startCluster({ dataDir: tmp.file(`cluster-${n}`), instances: n, env: { ...env, E2EE_DATABASE_URL: url } });
      try {
        const load = await readingsLoad({ url: cluster.url, key: ring, prefix: `E${n}` });
        // Warm-up: each instance's JIT sees 1/n of the traffic, so n times as long (not measured; its 2xx are
        // counted for the stored-rows check).
        let okN = (await cannon({ url: cluster.url, requests: [load.request], connections, duration: n * Math.min(5, duration) }))['2xx'];
        const pids = cluster.state().instances.map((i) => i.pid);
        const rates = [];
        let cpu;
        for (let round = 0; round < rounds; round++) {
          const before = { pg: await pgCpu(pg), node: pids.reduce((s, p) => s + cpuOf(p), 0) };
          const r = await cannon({ url: cluster.url, requests: [load.request], connections, duration });
          if (r.non2xx + r.errors + r.timeouts > 0) throw new Error(`${n} instance(s): ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
          okN += r['2xx'];
          rates.push(r['2xx'] / duration);
          if (!cpu) cpu = { pgCpuS: (await pgCpu(pg)) - before.pg, nodeCpuS: pids.reduce((s, p) => s + cpuOf(p), 0) - before.node, seconds: duration };
          log?.(`  HAProxy, ${n} instance(s), round ${round + 1}: ${fmt(r['2xx'] / duration)} readings/s, p99 ${r.latency.p99} ms`);
        }
        await cluster.stop();
        const s = { ...(await countStored(pg, url, `E${n}`)), ok: okN, sent: load.sent };
        if (s.n < s.ok || s.n > s.sent || s.d !== s.n) throw new Error(`${n} instance(s): ${s.ok} answered 2xx of ${s.sent} sent, ${s.n} rows stored (${s.d} distinct)`);
        balanced.push({ instances: n, rps: median(rates), cpu, stored: s });
      } finally {
        await cluster.stop();
      }
    }
    return { config: { duration, rounds, connections, instances }, one, balanced };
  } finally {
    pg.destroy();
    tmp.cleanup();
  }
}

if (require.main === module) {
  const duration = arg('duration', 10);
  const rounds = arg('rounds', 3);
  const connections = arg('connections', 20);
  const instances = arg('instances', 3);
  const json = process.argv.includes('--json');
  benchMain(() => run({ duration, rounds, connections, instances, log: json ? undefined : console.log }), (r) => {
    const w = r.one.work;
    console.log(`Scale-out: autocannon ${connections} connections, ${duration} s x ${rounds} rounds, Node ${process.version}`);
    console.log(`  one instance: SQLite ${fmt(r.one.sqlite)} readings/s, PostgreSQL ${fmt(r.one.postgresql)} readings/s: ${r.one.ratio.toFixed(2)} of SQLite`);
    console.log(`  per reading on PostgreSQL: ${w.statementsPerReading.toFixed(2)} statements (round trips), ${w.commitsPerReading.toFixed(3)} commits; batches: readings ${w.readingBatch.toFixed(1)}, replay decisions ${w.replayBatch.toFixed(1)}`);
    console.log(`  CPU per reading: PostgreSQL ${w.pgCpuPerReadingMs.toFixed(3)} ms, Node-RED ${w.nodeCpuPerReadingMs.toFixed(3)} ms (${w.pgCpuS.toFixed(1)} s / ${w.nodeCpuS.toFixed(1)} s over ${w.seconds} s); Node-RED on SQLite ${w.sqliteNodeCpuPerReadingMs.toFixed(3)} ms`);
    for (const b of r.balanced) console.log(`  HAProxy, ${b.instances} instance(s): ${fmt(b.rps)} readings/s; CPU over ${b.cpu.seconds} s: PostgreSQL ${b.cpu.pgCpuS.toFixed(1)} s, Node-RED ${b.cpu.nodeCpuS.toFixed(1)} s`);
  });
}

module.exports = { run };
