#!/usr/bin/env node
/**
 * The registry at fleet size: the backend of `npm start` with 100,000 registered devices, then the latency
 * of single requests one after another (p50, p99): a registration of a new device, a config poll of a known
 * one, a page of the operator list; and the resident memory (RSS) of the Node-RED process.
 *
 * With --heap, the live heap is measured from heap snapshots of the Node-RED process (after a full GC, which a
 * snapshot does) at a tenth of the fleet and at the whole fleet: what each device costs, and who holds it.
 *
 * With --node-args "...", the Node-RED process runs with those Node options (for example a heap cap,
 * `--max-old-space-size=160`, to see what it does to the RSS and the latencies).
 *
 * Usage: node bench/registry.js [--devices 100000] [--samples 1000] [--heap] [--node-args "..."] [--json]
 */
'use strict';
const http = require('node:http');
const path = require('node:path');
const crypto = require('node:crypto');
const { startBackend } = require('../test/support/backend');
const { tempDir } = require('../test/support/tmp');
const { requestJson } = require('../dist/sim/device');
const { fmt, arg, benchMain } = require('./lib/runtime');
const { rssMb, registerDevice, registrationBody } = require('./lib/load');
const { takeSnapshot, summarize } = require('./lib/heap');
const fs = require('node:fs');
const lib = require('../dist/nodes/lib');

const START = path.join(__dirname, '..', 'scripts', 'start.js');
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const id = (i) => `RG-${String(i).padStart(8, '0')}`;

/** The value of --node-args, split into options. */
function nodeArgsOption() {
  const at = process.argv.indexOf('--node-args');
  return at >= 0 && process.argv[at + 1] ? process.argv[at + 1].split(/\s+/).filter(Boolean) : [];
}

async function run({ devices = arg('devices', 100000), samples = arg('samples', 1000), heap = process.argv.includes('--heap'), nodeOptions = nodeArgsOption() } = {}) {
  const tmp = tempDir('esp-e2ee-bench-registry-');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const KEY = crypto.randomBytes(16).toString('hex');
  // npm start's default: per-device keys, sealed registration and poll (the client derives each device's key).
  const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256', 1000);
  // The device cap (E2EE_MAX_DEVICES, 10,000 by default) is set to what this run registers: the fleet and the timed
  // registrations. The smoke run takes the same path with a small fleet, so a cap it forgets fails there too.
  const cap = devices + samples;
  const snapshots = path.join(tmp.dir, 'heap');
  fs.mkdirSync(snapshots);
  const nodeArgs = [...nodeOptions, ...(heap ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`] : [])];
  const backend = await startBackend({ script: START, nodeArgs, dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn', E2EE_RATE_LIMIT: 'off', E2EE_MAX_DEVICES: String(cap) } });
  /** The live heap now (a snapshot forces a full GC first); the file is removed once read. */
  const liveHeap = async () => {
    const file = await takeSnapshot(backend.pid, snapshots);
    const s = summarize(file);
    fs.rmSync(file);
    return s;
  };
  const heaps = {};
  const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
  /** Each device's next uplink SEQN (its registration used 0). */
  const seqns = new Map();
  /** A sealed poll of a device, ready to send (sealing is the client's work, not timed). */
  const pollRequest = (deviceid) => {
    const seqn = (seqns.get(deviceid) ?? 0) + 1;
    seqns.set(deviceid, seqn);
    const body = lib.encryptToWire(ring.material(deviceid), Buffer.from(JSON.stringify({ SEQN: seqn, ack: 0 })), deviceid, { type: 'poll', kv: 0 });
    return (via) => requestJson(`${backend.url}/api/devices/${deviceid}/poll`, 'POST', body, {}, via);
  };
  try {
    const register = (i) => registerDevice(backend.url, ring, id(i), { ipaddr: '10.0.0.1', ssid: 'fleet', agent });
    const rssEmpty = rssMb(backend.pid);
    const fillStart = Date.now();
    let next = 0;
    const fill = async (upTo) => Promise.all(Array.from({ length: 50 }, async () => {
      while (next < upTo) {
        const r = await register(next++);
        if (r.status !== 201) throw new Error(`register: ${r.status}`);
      }
    }));
    if (heap) {
      heaps.empty = await liveHeap();
      await fill(Math.floor(devices / 10));
      heaps.tenth = await liveHeap();
    }
    await fill(devices);
    if (heap) heaps.full = await liveHeap();
    const fillSeconds = (Date.now() - fillStart) / 1000;
    const rssAfterFill = rssMb(backend.pid);
    const timed = async (fn) => {
      const t = process.hrtime.bigint();
      const r = await fn();
      if (r.status >= 300) throw new Error(`HTTP ${r.status} ${JSON.stringify(r.body)}`);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    const one = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const auth = { authorization: `Bearer ${TOKEN}` };
    const lat = { register: [], poll: [], list: [] };
    for (let i = 0; i < samples; i++) {
      // Each request is sealed before its clock starts: the latency is the backend's and the loopback's only.
      const registration = registrationBody(ring, id(devices + i), { ipaddr: '10.0.0.2', ssid: 'fleet' });
      lat.register.push(await timed(() => requestJson(`${backend.url}/api/devices/${id(devices + i)}`, 'POST', registration, {}, one)));
      const poll = pollRequest(id(Math.floor(Math.random() * devices)));
      lat.poll.push(await timed(() => poll(one)));
      if (i % 5 === 0) lat.list.push(await timed(() => requestJson(`${backend.url}/api/devices?limit=50&offset=${Math.floor(Math.random() * devices)}`, 'GET', undefined, auth, one)));
    }
    one.destroy();
    const stat = (xs) => ({ p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), n: xs.length });
    const perDevice = heap ? ((heaps.full.mb - heaps.tenth.mb) * 1048576) / (devices - Math.floor(devices / 10)) : undefined;
    return { devices, nodeOptions, fillSeconds, registerPerSecond: devices / fillSeconds, register: stat(lat.register), poll: stat(lat.poll), list: stat(lat.list), rssMbEmpty: rssEmpty, rssMbAfterFill: rssAfterFill, rssMb: rssMb(backend.pid), ...(heap ? { heap: { emptyMb: heaps.empty.mb, tenthMb: heaps.tenth.mb, fullMb: heaps.full.mb, bytesPerDevice: perDevice, holders: heaps.full.holders } } : {}) };
  } finally {
    agent.destroy();
    await backend.stop();
    tmp.cleanup();
  }
}

if (require.main === module) {
  benchMain(run, (r) => {
    console.log(`registry with ${fmt(r.devices)} devices${r.nodeOptions.length ? ` (node ${r.nodeOptions.join(' ')})` : ''} (registered in ${r.fillSeconds.toFixed(0)} s, ${fmt(r.registerPerSecond)}/s with 50 at once), single requests in turn:`);
    for (const k of ['register', 'poll', 'list']) console.log(`  ${k.padEnd(9)} p50 ${r[k].p50.toFixed(2)} ms  p99 ${r[k].p99.toFixed(2)} ms  (${r[k].n} requests)`);
    console.log(`  RSS of the Node-RED process: ${r.rssMb.toFixed(0)} MB (goal < 200 MB); ${r.rssMbEmpty.toFixed(0)} MB with no device`);
    if (r.heap) {
      console.log(`  live heap: ${r.heap.emptyMb.toFixed(1)} MB empty, ${r.heap.tenthMb.toFixed(1)} MB at ${fmt(r.devices / 10)}, ${r.heap.fullMb.toFixed(1)} MB at ${fmt(r.devices)}: ${r.heap.bytesPerDevice.toFixed(0)} bytes per device`);
      for (const h of r.heap.holders) console.log(`    ${h.name.padEnd(40)} ${h.mb.toFixed(1).padStart(7)} MB  ${fmt(h.count)}`);
    }
  });
}

module.exports = { run };
