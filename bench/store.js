#!/usr/bin/env node
/**
 * Benchmark: the device store under group commit, in a real Node-RED runtime.
 *
 *   readings  device-registry `log` (durable: each message goes on after its
 *             transaction committed, synchronous=FULL)
 *   replay    replay-guard decisions across 1,000 devices, each accepted one
 *             persisted before it goes on (persist before-send)
 *   replay+log replay-guard (persist with-next-write) then log, as the shipped
 *             flow does: the state commits with the reading
 *   baseline  a change node on the same runtime: what Node-RED itself costs
 *             per message, so the store's share can be read off as a ratio
 *   durability the same log on a second store with durability process
 *             (synchronous=NORMAL), under load and one reading at a time
 *             (each waits for its commit), beside the default (power, FULL)
 *
 * Usage: node bench/store.js [--messages 50000] [--rounds 5] [--devices 1000] [--in-flight 500] [--json]
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startRuntime, pump, median, fmt, arg, benchMain } = require('./lib/runtime');

const MESSAGES = arg('messages', 50000);
const ROUNDS = arg('rounds', 5);
const DEVICES = arg('devices', 1000);
// Messages between input and output at any time: as many devices posting at once.
const IN_FLIGHT = arg('in-flight', 500);

async function run() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'esp-e2ee-bench-store-'));
  const flow = [
    { id: 'tab', type: 'tab', label: 'bench' },
    { id: 'store', type: 'device-store', path: path.join(dir, 'bench.sqlite'), heartbeat: 300 },
    { id: 'readingsLog', type: 'device-registry', z: 'tab', store: 'store', action: 'log', wires: [['sink']] },
    { id: 'replayGuard', type: 'replay-guard', z: 'tab', store: 'store', deviceProperty: 'deviceid', seqProperty: 'payload.SEQN', window: 0, wires: [['sink'], ['sink']] },
    { id: 'guardThenLog', type: 'replay-guard', z: 'tab', store: 'store', deviceProperty: 'deviceid', seqProperty: 'payload.SEQN', window: 0, persist: 'with-next-write', wires: [['fusedLog'], ['sink']] },
    { id: 'fusedLog', type: 'device-registry', z: 'tab', store: 'store', action: 'log', wires: [['sink']] },
    { id: 'storeProcess', type: 'device-store', path: path.join(dir, 'bench-process.sqlite'), heartbeat: 300, durability: 'process' },
    { id: 'processLog', type: 'device-registry', z: 'tab', store: 'storeProcess', action: 'log', wires: [['sink']] },
    { id: 'changeBaseline', type: 'change', z: 'tab', rules: [{ t: 'set', p: 'statusCode', pt: 'msg', to: '200', tot: 'num' }], wires: [['sink']] },
    { id: 'sink', type: 'debug', z: 'tab', active: false, tosidebar: false, console: false, complete: 'false', wires: [] },
  ];
  const runtime = await startRuntime({ flow });
  const { store } = runtime.getNode('store');
  await store.ready();
  const ids = Array.from({ length: DEVICES }, (_, i) => `bench-${String(i).padStart(4, '0')}`);
  await Promise.all(ids.map((deviceid) => store.register({ deviceid, ipaddr: '127.0.0.1', ssid: 'bench' })));
  const storeProcess = runtime.getNode('storeProcess').store;
  await storeProcess.ready();
  await Promise.all(ids.map((deviceid) => storeProcess.register({ deviceid, ipaddr: '127.0.0.1', ssid: 'bench' })));

  let seq = 0;
  // Every message has a fresh SEQN for its device; devices take turns.
  const makeMessages = () => Array.from({ length: MESSAGES }, (_, i) => {
    seq++;
    return { deviceid: ids[i % DEVICES], payload: { data: { a0: i % 1024, heap: 30000, uptime: seq }, SEQN: seq } };
  });
  const send = (id) => pump(runtime, id, 'sink', makeMessages(), IN_FLIGHT);

  const ORDER = ['changeBaseline', 'readingsLog', 'replayGuard', 'guardThenLog', 'processLog'];
  for (const id of ORDER) await send(id);
  const rows = Object.fromEntries(ORDER.map((id) => [id, []]));
  const before = { ...store.groupCommitStats };
  for (let round = 0; round < ROUNDS; round++) {
    for (const id of round % 2 ? [...ORDER].reverse() : ORDER) rows[id].push(await send(id));
  }
  // One reading at a time: each waits for its own commit (an fsync with power; none with process).
  const SERIAL = Math.max(50, Math.floor(MESSAGES / 100));
  const serial = { readingsLog: [], processLog: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const id of round % 2 ? ['processLog', 'readingsLog'] : ['readingsLog', 'processLog']) serial[id].push(await pump(runtime, id, 'sink', makeMessages().slice(0, SERIAL), 1));
  }
  const stats = store.groupCommitStats;
  const batches = stats.batches - before.batches;
  const writes = stats.writes - before.writes;
  const [{ n: stored }] = await new Promise((resolve, reject) => {
    const sqlite3 = require('sqlite3');
    const db = new sqlite3.Database(path.join(dir, 'bench.sqlite'), sqlite3.OPEN_READONLY);
    db.all('SELECT count(*) AS n FROM readings', (err, r) => db.close(() => (err ? reject(err) : resolve(r))));
  });
  const version = runtime.RED.version();
  await runtime.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  const m = (id) => median(rows[id]);
  return {
    nodeRed: version, messages: MESSAGES, rounds: ROUNDS, devices: DEVICES, inFlight: IN_FLIGHT,
    baseline: m('changeBaseline'),
    log: m('readingsLog'),
    replay: m('replayGuard'),
    replayThenLog: m('guardThenLog'),
    durability: {
      loaded: { power: m('readingsLog'), process: m('processLog') },
      serial: { power: median(serial.readingsLog), process: median(serial.processLog) },
    },
    groupCommit: { writes, batches, meanBatch: writes / batches, largestBatch: stats.largestBatch, storedRows: stored },
  };
}

benchMain(run, (r) => {
  console.log(`device-store benchmark: Node-RED ${r.nodeRed}, Node ${process.version}, ${r.messages} msgs x ${r.rounds} rounds, ${r.devices} devices, ${r.inFlight} in flight, WAL + synchronous=FULL`);
  console.log(`  baseline change node          median ${fmt(r.baseline)} msgs/s`);
  console.log(`  device-registry log           median ${fmt(r.log)} readings/s (goal >= 60,000), ratio to baseline ${(r.log / r.baseline).toFixed(2)}`);
  console.log(`  replay-guard decisions        median ${fmt(r.replay)} msgs/s (goal >= 120,000), ratio to baseline ${(r.replay / r.baseline).toFixed(2)}`);
  console.log(`  replay-guard (with-next-write) then log  median ${fmt(r.replayThenLog)} readings/s, ratio to baseline ${(r.replayThenLog / r.baseline).toFixed(2)}`);
  console.log(`  durability process / power: ${(r.durability.loaded.process / r.durability.loaded.power).toFixed(2)}x under load (${fmt(r.durability.loaded.process)} vs ${fmt(r.durability.loaded.power)} readings/s), ${(r.durability.serial.process / r.durability.serial.power).toFixed(2)}x one at a time (${fmt(r.durability.serial.process)} vs ${fmt(r.durability.serial.power)} readings/s)`);
  console.log(`  group commit: ${fmt(r.groupCommit.writes)} writes in ${fmt(r.groupCommit.batches)} transactions (mean ${r.groupCommit.meanBatch.toFixed(0)} per commit, largest ${fmt(r.groupCommit.largestBatch)}); ${fmt(r.groupCommit.storedRows)} readings in the file`);
});
