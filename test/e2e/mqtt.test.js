'use strict';
/**
 * The MQTT transport against `npm start`, through two real brokers: the embedded one (aedes, in the backend's
 * process) and Debian's Mosquitto, started here on a private loopback port with the password and ACL files that
 * `esp-e2ee-keys --mosquitto` writes. The same scenarios run on both: the simulator's MQTT transport as the device,
 * raw mqtt.js clients as the attacker.
 */
require('should');
const crypto = require('node:crypto');
const path = require('node:path');
const mqtt = require('mqtt');
const { startBackend } = require('../support/backend');
const { until } = require('../support/wait');
const { startMosquitto: startMosquittoFor } = require('../support/mosquitto');
const { tempDir, querySqlite } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { SimDevice, requestJson } = require('../../dist/sim/device');
const { StateFile } = require('../../dist/sim/state');

const KEY = crypto.randomBytes(16).toString('hex');
const TOKEN = crypto.randomBytes(16).toString('hex');
const master = Buffer.from(KEY, 'hex');
const ring = new lib.DeviceKeyring(master, 'hmac-sha256');
const IDS = ['5C:CF:7F:A0:00:01', '5C:CF:7F:A0:00:02', '5C:CF:7F:A0:00:03', '5C:CF:7F:A0:00:04'];

/** Mosquitto with the files esp-e2ee-keys writes for IDS (or open, without them). */
const startMosquitto = (dir, { open = false } = {}) => startMosquittoFor(dir, { keyHex: KEY, ids: IDS, open });

/** A raw client: connects with the given credentials; resolves with the client or rejects with the broker's refusal. */
function client(url, username, password, options = {}) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { username, password, reconnectPeriod: 0, connectTimeout: 3000, clean: true, ...options });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => { c.end(true); reject(err); });
  });
}

function scenarios(name, setup) {
  describe(`MQTT through ${name}: the broker sees only ciphertext; nothing it relays is accepted twice or for another device`, function () {
    this.timeout(120000);
    let ctx;
    const devices = [];
    before(async function () {
      ctx = await setup();
    });
    after(async function () {
      for (const d of devices) await d.stop();
      await ctx.stop();
    });
    const op = (method, suffix, body) => requestJson(`${ctx.backend.url}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });
    const db = () => path.join(ctx.dataDir, 'node-red', 'esp-e2ee.sqlite');
    const stored = async (id) => (await querySqlite(db(), 'SELECT seqn FROM readings WHERE deviceid = ? ORDER BY seqn', [id])).map((r) => r.seqn);
    function device(id) {
      const d = new SimDevice({
        id, baseUrl: ctx.backend.url, key: ring.material(id), keyver: 0, deviceKey: ring.deviceKey(id), interval: 60,
        state: new StateFile(path.join(ctx.dataDir, `${id.replace(/:/g, '')}.json`)),
        transport: 'mqtt', broker: ctx.brokerUrl, brokerPassword: lib.brokerPassword(master, id),
      });
      devices.push(d);
      return d;
    }

    it('registers, and its readings are stored exactly once, also when the broker delivers one twice (QoS 1)', async function () {
      const d = device(IDS[0]);
      await d.connect();
      // The flow's client says "Connected" at CONNACK; its SUBSCRIBE may still be on its way on a loaded machine, and
      // what is published before it is not delivered: the registration is repeated until answered, as firmware does.
      let registered = 0;
      for (let i = 0; i < 10 && registered !== 200; i++) registered = (await d.register()).status;
      registered.should.equal(200);
      const sent = [];
      for (let i = 0; i < 5; i++) {
        const r = await d.postReading();
        r.status.should.equal(200);
        sent.push(r);
      }
      // A redelivery: the same PUBLISH again (a QoS 1 duplicate after a lost PUBACK).
      const raw = await client(ctx.brokerUrl, lib.brokerUser(IDS[0]), lib.brokerPassword(master, IDS[0]), { clientId: `${IDS[0]}-dup` });
      await raw.publishAsync(`esp-e2ee/${IDS[0]}/up/reading`, JSON.stringify(sent[2].sent), { qos: 1, dup: true });
      raw.end(true);
      await until('five readings stored', async () => (await stored(IDS[0])).length >= 5);
      await new Promise((r) => setTimeout(r, 300));
      (await stored(IDS[0])).should.eql(sent.map((s) => s.seqn));
      const row = (await op('GET', '')).body.find((r) => r.deviceid === IDS[0]);
      row.should.containEql({ transport: 'mqtt', online: true });
    });

    it('a recorded message replayed later is refused; a config answer replayed to the device is not applied', async function () {
      const d = devices[0];
      const old = await d.postReading();
      await until('stored', async () => (await stored(IDS[0])).includes(old.seqn));
      const raw = await client(ctx.brokerUrl, lib.brokerUser(IDS[0]), lib.brokerPassword(master, IDS[0]), { clientId: `${IDS[0]}-replay` });
      await raw.publishAsync(`esp-e2ee/${IDS[0]}/up/reading`, JSON.stringify(old.sent), { qos: 1 });
      raw.end(true);
      // (The rejection log aggregates per source; the store is the witness.)
      await new Promise((r) => setTimeout(r, 800));
      (await stored(IDS[0])).filter((s) => s === old.seqn).length.should.equal(1);
      ctx.backend.output.should.match(/"5C:CF:7F:A0:00:01" \(source MQTT\) rejected: (replay|stale)/);
    });

    it('commands queued while the device is offline arrive when it reconnects, and are acknowledged', async function () {
      const d = devices[0];
      await d.disconnect();
      for (const led of [true, false]) (await op('POST', `/${encodeURIComponent(IDS[0])}/commands`, { led })).status.should.equal(202);
      const before = d.received.length;
      (await d.connect()).should.be.true(); // the persistent session was kept
      await until('both commands arrived', () => d.received.length >= before + 2, 10000);
      d.received.slice(before).map((r) => r.cmd).should.eql([{ led: true }, { led: false }]);
      await d.postReading();
      await until('acknowledged', async () => (await op('GET', `/${encodeURIComponent(IDS[0])}/commands`)).body.every((c) => c.state === 'acknowledged'), 10000);
    });

    it('a rekey over MQTT: the device takes it and the backend moves to the new version', async function () {
      const d = devices[0];
      (await op('POST', `/${encodeURIComponent(IDS[0])}/rekey`, {})).status.should.equal(202);
      await until('the rekey taken', () => d.keyver === 1, 10000);
      (await d.poll()).status.should.equal(200);
      (await op('GET', '')).body.find((r) => r.deviceid === IDS[0]).should.containEql({ keyver: 1, pendingkeyver: null });
      const r = await d.postReading();
      await until('a reading under the new key stored', async () => (await stored(IDS[0])).includes(r.seqn));
    });

    it('a device can neither speak as another on an open topic nor get anything accepted as it (MAC bound to id and type)', async function () {
      const b = device(IDS[1]);
      await b.connect();
      (await b.register()).status.should.equal(200);
      // A's key, sealed as A, published where B's uplinks go.
      const a = ring.material(IDS[0]);
      const forged = lib.encryptToWire(a, Buffer.from(JSON.stringify({ data: { forged: true }, SEQN: 1e6, ack: 0 })), IDS[0], { type: 'reading', kv: 0 });
      const asB = lib.encryptToWire(a, Buffer.from(JSON.stringify({ data: { forged: true }, SEQN: 1e6 + 1, ack: 0 })), IDS[1], { type: 'reading', kv: 0 });
      // A registration sealed by B published as a reading: the type is in the MAC.
      const wrongType = lib.encryptToWire(ring.material(IDS[1]), Buffer.from(JSON.stringify({ ipaddr: '10.6.6.6', ssid: 'x', SEQN: 1e6 + 2, ack: 0 })), IDS[1], { type: 'register', kv: 0 });
      // As on an open broker (no ACL): the login that may publish anywhere, the backend's.
      const attacker = await client(ctx.brokerUrl, lib.BACKEND_BROKER_USER, lib.backendBrokerPassword(master));
      for (const body of [forged, asB, wrongType]) await attacker.publishAsync(`esp-e2ee/${IDS[1]}/up/reading`, JSON.stringify(body), { qos: 1 });
      attacker.end(true);
      await new Promise((r) => setTimeout(r, 800));
      (await stored(IDS[1])).should.eql([]);
      (await b.postReading()).status.should.equal(200);
      await until('B\'s own reading stored', async () => (await stored(IDS[1])).length === 1);
    });

    it('the status topic: connected at connect, not from the Last Will when the connection drops; a forged status changes that flag and nothing else', async function () {
      const row = async (id) => (await op('GET', '')).body.find((r) => r.deviceid === id);
      const id = IDS[3];
      const d = device(id);
      await d.connect();
      (await d.register()).status.should.equal(200);
      await until('connected', async () => (await row(id)).connected === true, 5000).catch((e) => { console.log(ctx.backend.output.slice(-1500)); throw e; });
      const before = await row(id);
      // The connection drops without a DISCONNECT (power or WiFi lost): the broker publishes the device's Last Will.
      const raw = await client(ctx.brokerUrl, lib.brokerUser(id), lib.brokerPassword(master, id), {
        clientId: `${id}-will`, will: { topic: `esp-e2ee/${id}/status`, payload: Buffer.from('{"online":false}'), qos: 0, retain: false },
      });
      raw.stream.destroy();
      await until('not connected, from the Last Will', async () => (await row(id)).connected === false, 10000);
      // Forged, as on an open broker: with the login that may publish anywhere. Only the flag moves; extra fields, an
      // unknown device and a malformed status change nothing.
      const attacker = await client(ctx.brokerUrl, lib.BACKEND_BROKER_USER, lib.backendBrokerPassword(master), { clientId: 'forger' });
      await attacker.publishAsync(`esp-e2ee/${id}/status`, JSON.stringify({ online: true, keyver: 9, name: 'owned', data: { led: true }, SEQN: 1e9 }), { qos: 1 });
      await attacker.publishAsync('esp-e2ee/5C:CF:7F:EE:EE:EE/status', '{"online":true}', { qos: 1 });
      await attacker.publishAsync(`esp-e2ee/${id}/status`, '{"online":"yes"}', { qos: 1 });
      attacker.end(true);
      await until('the forged flag', async () => (await row(id)).connected === true, 5000);
      await new Promise((r) => setTimeout(r, 500));
      const after = await row(id);
      after.connected.should.be.true();
      const { connected: _a, ...restBefore } = before;
      const { connected: _b, ...restAfter } = after;
      restAfter.should.eql(restBefore);
      (await op('GET', '')).body.map((r) => r.deviceid).should.not.containEql('5C:CF:7F:EE:EE:EE');
      // The device carries on: its uplinks are accepted as before.
      const r = await d.postReading();
      await until('its reading stored', async () => (await stored(id)).includes(r.seqn));
      await d.disconnect();
    });

    if (setup.acl) {
      it('the broker\'s ACL: A\'s login cannot publish under B, nor read B\'s downlinks; a wrong password gets nothing', async function () {
        const a = await client(ctx.brokerUrl, lib.brokerUser(IDS[2]), lib.brokerPassword(master, IDS[2]));
        // The embedded broker refuses the subscription (SUBACK 128); Mosquitto grants it and filters at delivery.
        // Either way nothing of B's reaches A.
        const got = [];
        a.on('message', (t) => got.push(t));
        await a.subscribeAsync(`esp-e2ee/${IDS[1]}/down`, { qos: 1 }).catch(() => undefined);
        const seen = [];
        const backend = await client(ctx.brokerUrl, lib.BACKEND_BROKER_USER, lib.backendBrokerPassword(master), { clientId: 'watcher' });
        await backend.subscribeAsync(`esp-e2ee/${IDS[1]}/up/#`, { qos: 1 });
        backend.on('message', (t) => seen.push(t));
        await backend.publishAsync(`esp-e2ee/${IDS[1]}/down`, '{"for":"B"}', { qos: 1 });
        // (The embedded broker drops the connection of a client that publishes where it may not: no PUBACK comes.)
        await Promise.race([a.publishAsync(`esp-e2ee/${IDS[1]}/up/reading`, '{}', { qos: 1 }).catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
        await new Promise((r) => setTimeout(r, 500));
        seen.should.eql([]);
        got.should.eql([]);
        a.end(true);
        backend.end(true);
        await client(ctx.brokerUrl, lib.brokerUser(IDS[2]), 'wrong').should.be.rejected();
        // The id itself (with its colons) is not the user name: refused too.
        await client(ctx.brokerUrl, IDS[2], lib.brokerPassword(master, IDS[2])).should.be.rejected();
        await client(ctx.brokerUrl, undefined, undefined).should.be.rejected();
      });
    }
  });
}

async function backendWith(env, brokerUrl, extra = {}) {
  const tmp = tempDir('esp-e2ee-mqtt-');
  const backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_COMMAND_TTL: '60s', ...env } });
  await until('the flow connected to the broker', () => /Connected to broker/.test(backend.output), 20000);
  return { backend, dataDir: tmp.dir, brokerUrl: brokerUrl ?? backend.mqttUrl, ...extra, stop: async () => { await backend.stop(); tmp.cleanup(); } };
}

const embedded = async () => backendWith({});
embedded.acl = true;
scenarios('the embedded broker (npm start, E2EE_MQTT=embedded)', embedded);

const mosquitto = async () => {
  const dir = tempDir('esp-e2ee-mosquitto-');
  const broker = await startMosquitto(dir.dir);
  const ctx = await backendWith({ E2EE_MQTT: broker.url }, broker.url);
  return { ...ctx, stop: async () => { await ctx.stop(); await broker.stop(); dir.cleanup(); } };
};
mosquitto.acl = true;
scenarios('Mosquitto 2 with the password and ACL files of esp-e2ee-keys --mosquitto', mosquitto);
