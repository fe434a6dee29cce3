#!/usr/bin/env node
/**
 * Benchmark: the readings endpoint (aes-decrypt + replay-guard + durable
 * log, HMAC mode) against a bare http in -> http response flow, on the same
 * Node-RED, in one run. The backend is started with `npm start` in its own
 * process; the bare flow is added through the Node-RED admin API. autocannon
 * drives both with 20 connections; every readings request carries a fresh
 * SEQN (100 devices, round robin).
 *
 * Usage: node bench/http.js [--duration 10] [--rounds 3] [--connections 20]
 */
'use strict';
const crypto = require('node:crypto');
const autocannon = require('autocannon');
const lib = require('../dist/nodes/lib');
const { startBackend } = require('../test/support/backend');
const { tempDir } = require('../test/support/tmp');
const { requestJson } = require('../dist/sim/device');
const { median, fmt, arg } = require('./lib/runtime');

const DURATION = arg('duration', 10);
const ROUNDS = arg('rounds', 3);
const CONNECTIONS = arg('connections', 20);
const DEVICES = 100;

function cannon(opts) {
  return new Promise((resolve, reject) => {
    autocannon({ connections: CONNECTIONS, duration: DURATION, ...opts }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

async function main() {
  const tmp = tempDir('esp-e2ee-bench-http-');
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn' } });
  try {
    const login = await requestJson(`${backend.url}/admin/auth/token`, 'POST', { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: TOKEN });
    const auth = { authorization: `Bearer ${login.body.access_token}` };
    const bare = await requestJson(`${backend.url}/admin/flow`, 'POST', {
      label: 'bench: bare',
      nodes: [
        { id: 'bench-bare-in', type: 'http in', url: '/bench/bare', method: 'post', upload: false, wires: [['bench-bare-out']] },
        { id: 'bench-bare-out', type: 'http response', statusCode: '200', headers: {}, wires: [] },
      ],
    }, auth);
    if (bare.status !== 200) throw new Error(`adding the bare flow: ${bare.status} ${JSON.stringify(bare.body)}`);
    await new Promise((r) => setTimeout(r, 500));

    const key = lib.parseKey('hex', KEY, 'hmac-sha256');
    const ids = Array.from({ length: DEVICES }, (_, i) => `5C:CF:7F:BE:${String(Math.floor(i / 100)).padStart(2, '0')}:${String(i % 100).padStart(2, '0')}`);
    for (const id of ids) {
      const r = await requestJson(`${backend.url}/api/devices/${id}`, 'POST', { ipaddr: '127.0.0.1', ssid: 'bench' });
      if (r.status !== 201) throw new Error(`register ${id}: ${r.status}`);
    }
    const counters = new Map(ids.map((id) => [id, 0]));
    let turn = 0;
    const sample = lib.encryptToWire(key, Buffer.from(JSON.stringify({ data: { a0: 512, heap: 30000, uptime: 1 }, SEQN: 1 })), ids[0]);
    const readingRequest = {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req) => {
        const id = ids[turn++ % DEVICES];
        const seqn = counters.get(id) + 1;
        counters.set(id, seqn);
        const body = JSON.stringify(lib.encryptToWire(key, Buffer.from(JSON.stringify({ data: { a0: seqn % 1024, heap: 30000, uptime: seqn }, SEQN: seqn })), id));
        return { ...req, path: `/api/devices/${id}/readings`, body };
      },
    };
    const run = async (which) => {
      const r = which === 'bare'
        ? await cannon({ url: `${backend.url}/bench/bare`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(sample) })
        : await cannon({ url: backend.url, requests: [readingRequest] });
      const bad = r.non2xx + r.errors + r.timeouts;
      if (bad > 0) throw new Error(`${which}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
      return { rps: r.requests.average, p99: r.latency.p99, total: r.requests.total };
    };

    await cannon({ url: `${backend.url}/bench/bare`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(sample), duration: 2 });
    const rows = { bare: [], readings: [] };
    const ratios = [];
    let readingsSent = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? ['readings', 'bare'] : ['bare', 'readings'];
      const got = {};
      for (const which of order) got[which] = await run(which);
      rows.bare.push(got.bare);
      rows.readings.push(got.readings);
      readingsSent += got.readings.total;
      ratios.push(got.readings.rps / got.bare.rps);
    }
    const stored = await requestJson(`${backend.url}/api/devices/${ids[0]}/readings?limit=1000`, 'GET', undefined, { authorization: `Bearer ${TOKEN}` });
    console.log(`HTTP benchmark: npm start (Node-RED 4.1, Node ${process.version}), autocannon ${CONNECTIONS} connections, ${DURATION} s x ${ROUNDS} rounds`);
    for (let i = 0; i < ROUNDS; i++) {
      console.log(`  round ${i + 1}: bare ${fmt(rows.bare[i].rps)} req/s (p99 ${rows.bare[i].p99} ms), readings ${fmt(rows.readings[i].rps)} req/s (p99 ${rows.readings[i].p99} ms), ratio ${ratios[i].toFixed(2)}`);
    }
    console.log(`  median ratio readings/bare: ${median(ratios).toFixed(2)} (goal >= 0.8); ${fmt(readingsSent)} readings accepted, all 200; device ${ids[0]} has ${stored.body.length} stored (limit 1000)`);
  } finally {
    await backend.stop();
    tmp.cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
