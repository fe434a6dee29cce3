'use strict';
/**
 * A hostile broker. Between the devices and the real (embedded) broker sits a proxy of our own that speaks MQTT: it
 * records every message, drops some (and acknowledges them to the sender as if delivered), duplicates some, holds
 * some back and releases them out of order, moves some to another device's topic, and replays and injects recorded
 * ones later through a login of its own with full rights (as an open or compromised broker would). Downlinks get
 * the same treatment. Seeded, so a failure can be replayed.
 *
 * What must hold: every stored reading is one its device sent (same device, same SEQN, same data), none twice;
 * every command a device ran is one the operator queued for it, none twice; no config answer is applied for a request
 * it does not answer.
 */
require('should');
const crypto = require('node:crypto');
const net = require('node:net');
const path = require('node:path');
const mqtt = require('mqtt');
const mqttPacket = require('mqtt-packet');
const { startBackend, freePort } = require('../support/backend');
const { until } = require('../support/wait');
const { tempDir, querySqlite } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { SimDevice, requestJson } = require('../../dist/sim/device');
const { StateFile } = require('../../dist/sim/state');

const KEY = crypto.randomBytes(16).toString('hex');
const TOKEN = crypto.randomBytes(16).toString('hex');
const master = Buffer.from(KEY, 'hex');
const ring = new lib.DeviceKeyring(master, 'hmac-sha256');
const IDS = ['5C:CF:7F:B0:00:01', '5C:CF:7F:B0:00:02', '5C:CF:7F:B0:00:03'];
const SEED = Number(process.env.E2EE_HOSTILE_SEED || 20261205);

const { seeded: rng } = require('../support/random');

/**
 * The proxy. Client-to-broker and broker-to-client PUBLISH packets on the package's topics are subject to `decide`,
 * everything else passes. Counts what it did.
 */
function hostileProxy(brokerPort, random) {
  const counts = { seen: 0, dropped: 0, duplicated: 0, delayed: 0, moved: 0, replayed: 0, injected: 0 };
  const recorded = [];
  const held = [];
  const otherDevice = (topic) => {
    const parts = topic.split('/');
    const others = IDS.filter((id) => id !== parts[1]);
    parts[1] = others[Math.floor(random() * others.length)];
    return parts.join('/');
  };
  const server = net.createServer((client) => {
    const broker = net.connect(brokerPort, '127.0.0.1');
    const wire = (from, to, toFrom) => {
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      const send = (packet) => { if (!to.destroyed) to.write(mqttPacket.generate(packet)); };
      parser.on('packet', (packet) => {
        // (The unsealed status topic is the ACL and status tests' business: passed through.)
        if (packet.cmd !== 'publish' || !packet.topic.startsWith('esp-e2ee/') || packet.topic.endsWith('/status')) return send(packet);
        counts.seen++;
        recorded.push({ topic: packet.topic, payload: Buffer.from(packet.payload) });
        const r = random();
        // A QoS 1 publish that is not forwarded is acknowledged by the proxy itself: the sender believes it arrived.
        const ackSender = () => { if (packet.qos > 0 && !toFrom.destroyed) toFrom.write(mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId })); };
        if (r < 0.12) {
          counts.dropped++;
          ackSender();
        } else if (r < 0.24) {
          counts.duplicated++;
          send(packet);
          send({ ...packet, dup: true });
        } else if (r < 0.36) {
          counts.delayed++;
          ackSender();
          held.push({ send, packet: { ...packet, qos: 0, messageId: undefined } });
        } else if (r < 0.46) {
          counts.moved++;
          ackSender();
          send({ ...packet, topic: otherDevice(packet.topic), qos: 0, messageId: undefined });
        } else send(packet);
        // Now and then, release one held back packet: they come out of order.
        if (held.length > 0 && random() < 0.3) {
          const i = Math.floor(random() * held.length);
          const [h] = held.splice(i, 1);
          h.send(h.packet);
        }
      });
      parser.on('error', () => from.destroy());
      from.on('data', (chunk) => parser.parse(chunk));
    };
    wire(client, broker, client);
    wire(broker, client, broker);
    const close = () => { client.destroy(); broker.destroy(); };
    client.on('error', close);
    broker.on('error', close);
    client.on('close', close);
    broker.on('close', close);
  });
  return {
    counts,
    recorded,
    listen: () => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port))),
    /** Releases everything still held back. */
    flush() {
      for (const h of held.splice(0)) h.send(h.packet);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe(`a hostile broker (seed ${SEED}): nothing it records, drops, duplicates, reorders, moves, replays or injects is accepted unless its party sent it, and nothing twice`, function () {
  this.timeout(180000);
  let tmp;
  let backend;
  let proxy;
  const devices = [];
  before(async function () {
    tmp = tempDir('esp-e2ee-hostile-');
    backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_RATE_LIMIT: 'off' } });
    await until('the flow connected to the broker', () => /Connected to broker/.test(backend.output), 20000);
    proxy = hostileProxy(backend.mqttPort, rng(SEED));
    const port = await proxy.listen();
    for (const id of IDS) {
      const d = new SimDevice({
        id, baseUrl: backend.url, key: ring.material(id), keyver: 0, deviceKey: ring.deviceKey(id), interval: 60,
        state: new StateFile(path.join(tmp.dir, `${id.replace(/:/g, '')}.json`)),
        transport: 'mqtt', broker: `mqtt://127.0.0.1:${port}`, brokerPassword: lib.brokerPassword(master, id), answerTimeoutMs: 1500,
      });
      await d.connect();
      devices.push(d);
    }
  });
  after(async function () {
    for (const d of devices) await d.stop();
    if (proxy) await proxy.close();
    if (backend) await backend.stop();
    if (tmp) tmp.cleanup();
  });

  it('readings, registrations, polls and commands under attack: every stored or applied message is genuine, each once', async function () {
    const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });
    const sent = new Map(IDS.map((id) => [id, new Map()]));
    const queued = new Map(IDS.map((id) => [id, []]));
    const random = rng(SEED + 1);
    // Registration until each is in (the proxy may drop the request or the answer).
    for (const d of devices) await until(`${d.id} registered`, async () => (await d.register()).status === 200, 60000);
    const attacker = await mqtt.connectAsync(`mqtt://127.0.0.1:${backend.mqttPort}`, { username: lib.BACKEND_BROKER_USER, password: lib.backendBrokerPassword(master), clean: true });
    for (let round = 0; round < 40; round++) {
      for (const d of devices) {
        const r = await d.postReading();
        sent.get(d.id).set(r.seqn, JSON.parse(lib.decryptEnvelope(d.key, lib.parseEnvelope(r.sent), d.id, 'reading').toString()).data);
        if (random() < 0.15) {
          const q = await op('POST', `/${encodeURIComponent(d.id)}/commands`, { interval: 100 + round });
          if (q.status === 202) queued.get(d.id).push(q.body.seqn);
        }
        if (random() < 0.3) await d.poll();
      }
      // Replays and injections of recorded traffic, straight into the broker.
      if (proxy.recorded.length > 0) {
        for (let k = 0; k < 2; k++) {
          const rec = proxy.recorded[Math.floor(random() * proxy.recorded.length)];
          const inject = random() < 0.5;
          const topic = inject ? rec.topic.replace(/\/up\/(reading|poll|register)$/, `/up/${['reading', 'poll', 'register'][Math.floor(random() * 3)]}`).replace(/\/down$/, '/up/reading') : rec.topic;
          proxy.counts[inject ? 'injected' : 'replayed']++;
          await attacker.publishAsync(topic, rec.payload, { qos: 1 });
        }
      }
    }
    proxy.flush();
    // Calm: the devices poll until their commands are through (the proxy still attacks).
    for (let i = 0; i < 10; i++) for (const d of devices) await d.poll();
    await attacker.endAsync();
    await new Promise((r) => setTimeout(r, 1000));

    const rows = await querySqlite(path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite'), 'SELECT deviceid, seqn, payload FROM readings ORDER BY id');
    const seenKeys = new Set();
    for (const row of rows) {
      const key = `${row.deviceid}#${row.seqn}`;
      seenKeys.has(key).should.be.false(`${key} stored twice`);
      seenKeys.add(key);
      const data = sent.get(row.deviceid)?.get(row.seqn);
      (data !== undefined).should.be.true(`${key} stored but never sent by that device`);
      JSON.parse(row.payload).data.should.eql(data);
    }
    let ran = 0;
    for (const d of devices) {
      const cmds = d.received.map((r) => r.seqn);
      new Set(cmds).size.should.equal(cmds.length, `${d.id} ran a command twice`);
      for (const s of cmds) queued.get(d.id).should.containEql(s);
      ran += cmds.length;
    }
    const totalSent = [...sent.values()].reduce((n, m) => n + m.size, 0);
    const queuedTotal = [...queued.values()].reduce((n, q) => n + q.length, 0);
    const refusedAnswers = devices.reduce((n, d) => n + d.refusedAnswers.length, 0);
    const rejectedCommands = devices.reduce((n, d) => n + d.rejectedCommands.length, 0);
    console.log(`      proxy: ${JSON.stringify(proxy.counts)}; readings sent ${totalSent}, stored ${rows.length} (all genuine, none twice); commands queued ${queuedTotal}, run ${ran} (none twice, none another device's); answers refused ${refusedAnswers}, commands refused ${rejectedCommands}`);
    // The attack did happen, and the system still worked.
    proxy.counts.dropped.should.be.above(5);
    proxy.counts.moved.should.be.above(5);
    proxy.counts.replayed.should.be.above(5);
    rows.length.should.be.above(totalSent / 3);
  });
});
