#!/usr/bin/env node
/**
 * Benchmark: readings per second through the MQTT path of the shipped flow (npm start, its embedded broker), against,
 * in the same runtime and on the same broker, each round in rotated order:
 *
 *   bare           mqtt in -> a counter (what any MQTT flow costs at least)
 *   mqtt path      the shipped flow: mqtt in -> aes-decrypt (hmac-sha256, per-device keys) -> replay-guard -> store
 *   peer durable   mqtt in -> function (crypto-js decrypt, SEQN in context) -> node-red-node-sqlite INSERT
 *   http path      the same readings POSTed to the shipped flow's HTTP route (50 at a time, kept-alive)
 *
 * A round sends `--messages` readings from 50 devices (QoS 1, 200 in flight) and ends when the flow has taken
 * them all: the counter for bare, the stored rows for the others, which are reconciled with what was sent (one
 * SEQN sequence per device across both transports, as for a device that moves between them).
 *
 * Then the latency from an operator's command (POST /api/devices/:id/commands) to its acknowledgement, for a
 * simulated device over MQTT (the command published to it; it acknowledges at once with a poll) and one over HTTP
 * polling every second (the firmware's shortest interval), `--commands` each: p50 and p99.
 *
 * Usage: node bench/mqtt.js [--messages 5000] [--rounds 3] [--commands 30] [--json]
 */
'use strict';
const path = require('node:path');
const crypto = require('node:crypto');
const mqtt = require('mqtt');
const lib = require('../dist/nodes/lib');
const { startBackend } = require('../test/support/backend');
const { tempDir, querySqlite } = require('../test/support/tmp');
const http = require('node:http');
const { requestJson, SimDevice } = require('../dist/sim/device');
const { StateFile } = require('../dist/sim/state');
const { median, fmt, arg, benchMain } = require('./lib/runtime');
const { addFlow, registerDevice, peerFunction } = require('./lib/load');

const SERVER = path.join(__dirname, 'lib', 'server.js');
const DEVICES = 50;
const IN_FLIGHT = 200;

function benchFlow(keyHex, dbFile) {
  const peer = peerFunction(keyHex, { idFrom: "msg.topic.split('/')[2]", refuse: 'return null;', accept: 'return msg;' });
  const broker = 'e2ee-mqtt-broker';
  return [
    { id: 'bench-mqtt-sqlitedb', type: 'sqlitedb', db: dbFile, mode: 'RWC' },
    { id: 'bench-mqtt-bare', type: 'mqtt in', topic: 'esp-e2ee/bench-bare/+', qos: '1', datatype: 'json', broker, nl: false, rap: true, rh: 0, inputs: 0, wires: [['bench-mqtt-count']] },
    { id: 'bench-mqtt-count', type: 'function', func: "global.set('bareCount', (global.get('bareCount') || 0) + 1);\nreturn null;", outputs: 1, wires: [[]] },
    { id: 'bench-mqtt-peer', type: 'mqtt in', topic: 'esp-e2ee/bench-peer/+', qos: '1', datatype: 'json', broker, nl: false, rap: true, rh: 0, inputs: 0, wires: [['bench-mqtt-peer-fn']] },
    { id: 'bench-mqtt-peer-fn', type: 'function', func: peer, outputs: 1, wires: [['bench-mqtt-peer-db']] },
    { id: 'bench-mqtt-peer-db', type: 'sqlite', mydb: 'bench-mqtt-sqlitedb', sqlquery: 'prepared', sql: 'INSERT INTO readings (deviceid, seqn, payload) VALUES ($deviceid, $seqn, $payload)', wires: [[]] },
    { id: 'bench-mqtt-get', type: 'http in', url: '/bench/count', method: 'get', upload: false, wires: [['bench-mqtt-getfn']] },
    { id: 'bench-mqtt-getfn', type: 'function', func: "msg.payload = { bare: global.get('bareCount') || 0 };\nreturn msg;", outputs: 1, wires: [['bench-mqtt-resp']] },
    { id: 'bench-mqtt-resp', type: 'http response', statusCode: '200', headers: {}, wires: [] },
  ];
}

/**
 * POSTs the readings on kept-alive connections, each device's one after another as a device sends them (the guard's
 * window is strict: a device's later SEQN overtaking an earlier one would refuse the earlier), the devices at once.
 */
async function postAll(url, messages) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: DEVICES });
  const byDevice = new Map();
  for (const m of messages) {
    if (!byDevice.has(m.id)) byDevice.set(m.id, []);
    byDevice.get(m.id).push(m);
  }
  await Promise.all([...byDevice.values()].map(async (own) => {
    for (const m of own) {
      const r = await requestJson(`${url}/api/devices/${encodeURIComponent(m.id)}/readings`, 'POST', m.body, {}, agent);
      if (r.status !== 200) throw new Error(`reading ${m.id}: ${r.status}`);
    }
  }));
  agent.destroy();
}

const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

/**
 * Milliseconds from each operator command to its acknowledgement for one simulated device (MQTT: connected, taking
 * what is published to it; HTTP: polling every second).
 */
async function commandLatency({ backend, ring, master, token, dataDir, id, transport, commands }) {
  const d = new SimDevice({
    id, baseUrl: backend.url, key: ring.material(id), keyver: 0, deviceKey: ring.deviceKey(id), interval: 1,
    state: new StateFile(path.join(dataDir, `${transport}.json`)), transport, broker: backend.mqttUrl, brokerPassword: lib.brokerPassword(master, id),
  });
  await d.connect();
  if ((await d.register()).status > 201) throw new Error(`register ${id}`);
  let polling = transport === 'http';
  const poller = (async () => {
    while (polling) {
      await d.poll().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  const auth = { authorization: `Bearer ${token}` };
  const url = `${backend.url}/api/devices/${encodeURIComponent(id)}/commands`;
  const ms = [];
  for (let i = 0; i < commands; i++) {
    const start = process.hrtime.bigint();
    const q = await requestJson(url, 'POST', { led: i % 2 === 0 }, auth);
    if (q.status !== 202) throw new Error(`command: ${q.status}`);
    for (;;) {
      const log = await requestJson(url, 'GET', undefined, auth);
      if (log.body.find((c) => c.seqn === q.body.seqn)?.state === 'acknowledged') break;
      await new Promise((r) => setTimeout(r, 2));
    }
    ms.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  polling = false;
  await poller;
  await d.disconnect();
  return { p50: percentile(ms, 50), p99: percentile(ms, 99), n: ms.length };
}

/** Publishes the messages QoS 1 with a window of IN_FLIGHT, from one connection. */
async function publishAll(client, messages) {
  let next = 0;
  const worker = async () => {
    while (next < messages.length) {
      const m = messages[next++];
      await client.publishAsync(m.topic, m.payload, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

async function waitFor(count, target, timeoutMs = 120000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const n = await count();
    if (n >= target) return n;
    if (Date.now() > end) throw new Error(`only ${n} of ${target} taken`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function run({ messages = arg('messages', 5000), rounds = arg('rounds', 3), commands = arg('commands', 30) } = {}) {
  const tmp = tempDir('esp-e2ee-bench-mqtt-');
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const master = Buffer.from(KEY, 'hex');
  const ring = new lib.DeviceKeyring(master, 'hmac-sha256');
  const backend = await startBackend({ script: SERVER, dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn', E2EE_RATE_LIMIT: 'off' } });
  const sqlite3 = require('sqlite3');
  const peerDb = path.join(tmp.dir, 'peer.sqlite');
  await new Promise((resolve, reject) => {
    const db = new sqlite3.Database(peerDb, (err) => (err ? reject(err) : db.run('CREATE TABLE readings (id INTEGER PRIMARY KEY, deviceid TEXT, seqn INTEGER, payload TEXT)', (e) => db.close(() => (e ? reject(e) : resolve())))));
  });
  try {
    await addFlow(backend.adminUrl, TOKEN, 'bench-mqtt', benchFlow(KEY, peerDb));
    const store = path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite');
    const ids = Array.from({ length: DEVICES }, (_, i) => `5C:CF:7F:BC:00:${String(i).padStart(2, '0')}`);
    for (const id of ids) if ((await registerDevice(backend.url, ring, id)).status > 201) throw new Error(`register ${id}`);
    // The bench publishes as the backend user (one connection carries every device's readings).
    const client = await mqtt.connectAsync(backend.mqttUrl, { username: lib.BACKEND_BROKER_USER, password: lib.backendBrokerPassword(master), clean: true });
    const seqn = new Map(ids.map((id) => [id, 0]));
    const peerSeqn = new Map(ids.map((id) => [id, 0]));
    const plain = lib.parseKey('hex', KEY, 'none');
    const reading = (id, n) => Buffer.from(JSON.stringify({ data: { a0: n % 1024, heap: 30000 }, SEQN: n, ack: 0 }));
    const batch = {
      bare: () => Array.from({ length: messages }, (_, i) => ({ topic: `esp-e2ee/bench-bare/${i % DEVICES}`, payload: JSON.stringify(lib.encryptToWire(ring.material(ids[0]), reading(ids[0], i), ids[0], { type: 'reading', kv: 0 })) })),
      'mqtt path': () => Array.from({ length: messages }, (_, i) => {
        const id = ids[i % DEVICES];
        const n = seqn.get(id) + 1;
        seqn.set(id, n);
        return { topic: `esp-e2ee/${id}/up/reading`, payload: JSON.stringify(lib.encryptToWire(ring.material(id), reading(id, n), id, { type: 'reading', kv: 0 })) };
      }),
      'peer durable': () => Array.from({ length: messages }, (_, i) => {
        const id = ids[i % DEVICES];
        const n = peerSeqn.get(id) + 1;
        peerSeqn.set(id, n);
        return { topic: `esp-e2ee/bench-peer/${id}`, payload: JSON.stringify(lib.encryptToWire(plain, reading(id, n), id)) };
      }),
      'http path': () => Array.from({ length: messages }, (_, i) => {
        const id = ids[i % DEVICES];
        const n = seqn.get(id) + 1;
        seqn.set(id, n);
        return { id, body: lib.encryptToWire(ring.material(id), reading(id, n), id, { type: 'reading', kv: 0 }) };
      }),
    };
    const counters = {
      bare: async () => (await requestJson(`${backend.url}/bench/count`, 'GET')).body.bare,
      'mqtt path': async () => (await querySqlite(store, 'SELECT count(*) AS n FROM readings'))[0].n,
      'peer durable': async () => (await querySqlite(peerDb, 'SELECT count(*) AS n FROM readings'))[0].n,
    };
    counters['http path'] = counters['mqtt path'];
    const rates = { bare: [], 'mqtt path': [], 'peer durable': [], 'http path': [] };
    const names = Object.keys(batch);
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + round) % names.length];
        const msgs = batch[name]();
        const before = await counters[name]();
        const start = process.hrtime.bigint();
        if (name === 'http path') await postAll(backend.url, msgs);
        else await publishAll(client, msgs);
        await waitFor(counters[name], before + msgs.length);
        rates[name].push(msgs.length / (Number(process.hrtime.bigint() - start) / 1e9));
      }
    }
    await client.endAsync();
    // Reconciled: every reading sent through the MQTT path is stored once, for its device, in order.
    const stored = await querySqlite(store, 'SELECT count(*) AS n, count(DISTINCT deviceid || \'#\' || seqn) AS d FROM readings');
    const sent = [...seqn.values()].reduce((a, b) => a + b, 0);
    const ratio = (a, b) => median(rates[a].map((r, i) => r / rates[b][i]));
    const latency = {};
    for (const transport of ['mqtt', 'http']) {
      latency[transport] = await commandLatency({ backend, ring, master, token: TOKEN, dataDir: tmp.dir, id: `5C:CF:7F:BD:00:0${transport === 'mqtt' ? 1 : 2}`, transport, commands });
    }
    return {
      messages,
      rounds,
      rates: Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, median(v)])),
      mqttToBare: ratio('mqtt path', 'bare'),
      mqttToPeer: ratio('mqtt path', 'peer durable'),
      mqttToHttp: ratio('mqtt path', 'http path'),
      latency,
      stored: { sent, n: stored[0].n, distinct: stored[0].d },
    };
  } finally {
    await backend.stop();
    tmp.cleanup();
  }
}

if (require.main === module) {
  benchMain(run, (r) => {
    console.log(`MQTT path: ${r.messages} readings x ${r.rounds} rounds, ${DEVICES} devices, QoS 1, ${IN_FLIGHT} in flight`);
    for (const [name, rate] of Object.entries(r.rates)) console.log(`  ${name.padEnd(14)} ${fmt(rate).padStart(7)} readings/s`);
    console.log(`  mqtt path / bare ${r.mqttToBare.toFixed(2)}, / durable peer ${r.mqttToPeer.toFixed(2)}x, / http path ${r.mqttToHttp.toFixed(2)}; stored ${r.stored.n} of ${r.stored.sent} sent (${r.stored.distinct} distinct)`);
    for (const [t, l] of Object.entries(r.latency)) console.log(`  command to acknowledgement over ${t}: p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms (${l.n} commands)`);
  });
}

module.exports = { run };
