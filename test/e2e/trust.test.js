'use strict';
/**
 * The trust model against `npm start` (per-device keys, hmac-sha256): every attack here must fail. The attacker
 * speaks HTTP to the device port on loopback, knows every device id, and may hold keys of other devices, old keys
 * of this one, or recordings of its traffic; never this device's current key.
 *
 * Push targets (loopback, link-local, metadata addresses) and a push held back by a party that answers 200 at the
 * device's address are in push.test.js.
 */
require('should');
const crypto = require('node:crypto');
const path = require('node:path');
const { startBackend } = require('../support/backend');
const { until } = require('../support/wait');
const { tempDir, querySqlite } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { SimDevice, requestJson } = require('../../dist/sim/device');
const { StateFile } = require('../../dist/sim/state');
const { sealed: sealedAs } = require('../support/device');

describe('trust model: per-device keys, sealed control plane, acknowledged commands, rekey; every attack fails', function () {
  this.timeout(180000);
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
  let tmp;
  let backend;
  const devices = [];
  const start = async () => {
    backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_COMMAND_TTL: '15s' } });
    for (const d of devices) d.options.baseUrl = backend.url;
  };
  before(async function () {
    tmp = tempDir('esp-e2ee-trust-');
    await start();
  });
  after(async function () {
    for (const d of devices) await d.stop();
    if (backend) await backend.stop();
    tmp.cleanup();
  });
  const db = () => path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite');
  const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });
  const at = (id, suffix = '') => `${backend.url}/api/devices/${encodeURIComponent(id)}${suffix}`;
  /** A simulated device with its own key (version 0) and its own state file (its flash). */
  function device(id, options = {}) {
    const d = new SimDevice({ id, baseUrl: backend.url, key: ring.material(id), keyver: 0, deviceKey: ring.deviceKey(id), state: new StateFile(path.join(tmp.dir, `${id.replace(/:/g, '')}.json`)), interval: 60, ...options });
    devices.push(d);
    return d;
  }
  /** The same device after a reboot: a new process state read back from its flash. */
  function reboot(d) {
    const again = device(d.id);
    return again;
  }
  const row = async (id) => (await op('GET', '')).body.find((r) => r.deviceid === id);
  const commandStates = async (id) => (await op('GET', `/${encodeURIComponent(id)}/commands`)).body.map((c) => `${c.seqn}:${c.state}`).reverse();

  it('re-registration of a known device by a party without its key fails', async function () {
    const a = device('5C:CF:7F:70:00:01');
    (await a.register()).status.should.equal(201);
    (await op('PUT', `/${encodeURIComponent(a.id)}`, { name: 'greenhouse' })).status.should.equal(200);
    const attempts = [
      // the seed's plain registration
      await requestJson(at(a.id), 'POST', { ipaddr: '10.66.0.1', ssid: 'evil', name: 'pwned' }),
      // sealed under another device's key, under the master itself, under a guessed key
      await requestJson(at(a.id), 'POST', sealedAs(ring.material('5C:CF:7F:70:00:99'), a.id, 'register', { ipaddr: '10.66.0.1', ssid: 'evil', SEQN: 1e6 })),
      await requestJson(at(a.id), 'POST', sealedAs(lib.parseKey('hex', KEY, 'hmac-sha256'), a.id, 'register', { ipaddr: '10.66.0.1', ssid: 'evil', SEQN: 1e6 })),
      await requestJson(at(a.id), 'POST', sealedAs(lib.parseKey('hex', crypto.randomBytes(16).toString('hex'), 'hmac-sha256'), a.id, 'register', { ipaddr: '10.66.0.1', ssid: 'evil', SEQN: 1e6 })),
      // a reading of the device's own (recorded) sent as a registration: another type
      await requestJson(at(a.id), 'POST', (await a.postReading()).sent),
    ];
    attempts.map((r) => r.status).should.eql([401, 400, 400, 400, 400]);
    const r = await row(a.id);
    r.should.containEql({ ipaddr: '127.0.0.1', ssid: 'esp-e2ee-sim', name: 'greenhouse' });
    // The device itself still registers (its counter was not pushed up by the attempts).
    (await a.register()).status.should.equal(200);
  });

  it('a poll by a non-device gets nothing; the config is never sent in the clear', async function () {
    const a = device('5C:CF:7F:70:00:02');
    (await a.register()).status.should.equal(201);
    (await op('PUT', `/${encodeURIComponent(a.id)}`, { data: { interval: 30, wifi_note: 'secret-config-value' } })).status.should.equal(200);
    const answers = [
      await requestJson(at(a.id), 'GET'),
      await requestJson(at(a.id, '/poll'), 'POST', { SEQN: 5 }),
      await requestJson(at(a.id, '/poll'), 'POST', sealedAs(ring.material('5C:CF:7F:70:00:98'), a.id, 'poll', { SEQN: 1e6 })),
    ];
    answers.map((r) => r.status).should.eql([401, 400, 400]);
    for (const r of answers) JSON.stringify(r.body).should.not.containEql('secret-config-value');
    // The device's own poll gets it, sealed: the text is not in the answer, the device reads it.
    const polled = a.nextSeq();
    const raw = await requestJson(at(a.id, '/poll'), 'POST', a.seal('poll', { SEQN: polled, ack: 0 }));
    raw.status.should.equal(200);
    JSON.stringify(raw.body).should.not.containEql('secret-config-value');
    a.applyAnswer(raw.body, polled).should.be.true();
    a.interval.should.equal(30);
  });

  it('a recorded config answer replayed to the device is refused, and so is the recorded request', async function () {
    const a = device('5C:CF:7F:70:00:03');
    (await a.register()).status.should.equal(201);
    const first = a.nextSeq();
    const request = a.seal('poll', { SEQN: first, ack: 0 });
    const recorded = await requestJson(at(a.id, '/poll'), 'POST', request);
    recorded.status.should.equal(200);
    // Later the operator changes the config; an attacker answers the device's next poll with the recording.
    (await op('PUT', `/${encodeURIComponent(a.id)}`, { data: { interval: 42 } })).status.should.equal(200);
    a.applyAnswer(recorded.body, a.nextSeq()).should.be.false();
    a.refusedAnswers.should.containEql('not-this-request');
    a.interval.should.equal(60);
    // The recorded request again: a replay.
    (await requestJson(at(a.id, '/poll'), 'POST', request)).status.should.equal(400);
    // And a config answer is no command: fed to the command path it does not verify.
    a.runCommand(recorded.body, 'push').should.be.false();
    a.rejectedCommands.should.containEql('decrypt-failed');
    // The real next poll applies the new config.
    await a.poll();
    a.interval.should.equal(42);
  });

  it("a reading under device A's key posted as device B, and one for a guessed device id, are refused", async function () {
    const a = device('5C:CF:7F:70:00:04');
    const b = device('5C:CF:7F:70:00:05');
    (await a.register()).status.should.equal(201);
    (await b.register()).status.should.equal(201);
    const fromA = (id, seqn) => sealedAs(a.key, id, 'reading', { data: { t: 1 }, SEQN: seqn });
    (await requestJson(at(b.id, '/readings'), 'POST', fromA(b.id, 1e6))).status.should.equal(400);
    (await requestJson(at(b.id, '/readings'), 'POST', fromA(a.id, 1e6))).status.should.equal(400);
    (await requestJson(at('5C:CF:7F:70:00:77', '/readings'), 'POST', sealedAs(a.key, '5C:CF:7F:70:00:77', 'reading', { data: { t: 1 }, SEQN: 1 }))).status.should.equal(400);
    (await querySqlite(db(), 'SELECT count(*) AS n FROM readings WHERE deviceid IN (?, ?)', [b.id, '5C:CF:7F:70:00:77']))[0].n.should.equal(0);
    // B's counter was not moved: its own next reading is accepted.
    (await b.postReading()).status.should.equal(200);
  });

  it('an uplink reflected back as a downlink does not verify, nor a command as an uplink', async function () {
    const a = device('5C:CF:7F:70:00:06');
    await a.listen();
    (await a.register()).status.should.equal(201);
    const reading = (await a.postReading()).sent;
    // Reflected to the device's command port, it is refused.
    const pushed = await requestJson(`http://127.0.0.1:${a.cmdPort}/command`, 'POST', reading);
    pushed.status.should.equal(400);
    a.received.length.should.equal(0);
    // A command sealed for the device, posted as the device's reading or poll: refused.
    const command = sealedAs(a.key, a.id, 'command', { cmd: { led: true }, SEQN: 1e6 });
    (await requestJson(at(a.id, '/readings'), 'POST', command)).status.should.equal(400);
    (await requestJson(at(a.id, '/poll'), 'POST', command)).status.should.equal(400);
  });

  it('commands count as delivered only when acknowledged; offered again until then; the device drops the duplicate', async function () {
    const a = device('5C:CF:7F:70:00:07');
    (await a.register()).status.should.equal(201);
    (await op('POST', `/${encodeURIComponent(a.id)}/commands`, { led: true })).status.should.equal(202);
    // The answer to this poll is lost on the way (the device never sees it): nothing is marked delivered.
    const lost = await requestJson(at(a.id, '/poll'), 'POST', a.seal('poll', { SEQN: a.nextSeq(), ack: a.ack }));
    lost.status.should.equal(200);
    (await commandStates(a.id)).should.eql(['1:pending']);
    // The next poll offers it again; the device runs it.
    await a.poll();
    a.received.map((r) => r.seqn).should.eql([1]);
    (await commandStates(a.id)).should.eql(['1:pending']);
    // Its next uplink acknowledges it.
    (await a.postReading()).status.should.equal(200);
    await until('the acknowledgement', async () => (await commandStates(a.id))[0] === '1:acknowledged');
    // Offered once more (an answer recorded before the ack): the device's downlink guard drops the duplicate.
    const lostAnswer = JSON.parse(lib.decryptEnvelope(a.key, lib.parseEnvelope(lost.body), a.id, 'config').toString());
    a.runCommand(lostAnswer.commands[0], 'poll').should.be.false();
    a.rejectedCommands.should.containEql('replay');
    a.received.length.should.equal(1);
  });

  it('a poll answer never exceeds the receive buffer the device declared; the rest follows in further polls', async function () {
    const a = device('5C:CF:7F:70:00:08', { rxbuf: 600 });
    (await a.register()).status.should.equal(201);
    (await row(a.id)).rxbuf.should.equal(600);
    for (let i = 0; i < 5; i++) (await op('POST', `/${encodeURIComponent(a.id)}/commands`, { interval: 30 + i, pad: 'x'.repeat(60) })).status.should.equal(202);
    // A command that could never fit: refused when it is queued, not lost later.
    const tooBig = await op('POST', `/${encodeURIComponent(a.id)}/commands`, { pad: 'y'.repeat(500) });
    tooBig.status.should.equal(413);
    const sizes = [];
    for (let poll = 0; poll < 6 && a.received.length < 5; poll++) {
      const seqn = a.nextSeq();
      const r = await requestJson(at(a.id, '/poll'), 'POST', a.seal('poll', { SEQN: seqn, ack: a.ack }));
      r.status.should.equal(200);
      sizes.push(JSON.stringify(r.body).length);
      a.applyAnswer(r.body, seqn).should.be.true();
    }
    a.received.map((r) => r.cmd.interval).should.eql([30, 31, 32, 33, 34]);
    sizes.length.should.be.above(1);
    for (const size of sizes) size.should.be.belowOrEqual(600);
  });

  it('a command that is never acknowledged expires: logged, and listed as expired', async function () {
    const a = device('5C:CF:7F:70:00:09');
    (await a.register()).status.should.equal(201);
    (await op('POST', `/${encodeURIComponent(a.id)}/commands`, { led: true })).status.should.equal(202);
    await until('the expiry', async () => (await commandStates(a.id))[0] === '1:expired', 40000);
    await until('the expiry logged', () => /Command 1 for device 5C:CF:7F:70:00:09 expired: not acknowledged within 15s/.test(backend.output));
    // An expired command is not offered any more.
    await a.poll();
    a.received.length.should.equal(0);
  });

  describe('rekey (X25519), interrupted at every step: no lockout, no old key working afterwards, nothing a passive key holder can follow', function () {
    const id = '5C:CF:7F:70:00:10';
    let d;
    const oldKey = ring.material(id, 0);
    // Messages of the attacker's (or of the past) use numbers the device has not used yet, so only the key decides.
    const next = () => d.nextSeq();
    const oldReading = () => sealedAs(oldKey, id, 'reading', { data: { old: true }, SEQN: next() }, 0);
    /** What a passive holder of the old key recorded: the rekey command's answer and the device's uplinks. */
    const recorded = { answer: undefined, uplinks: [] };
    const keyColumns = async () => (await querySqlite(db(), 'SELECT keyver, pendingkeyver, keywrap, rekeysecret FROM devices WHERE deviceid = ?', [id]))[0];
    /** Records every body the device seals (a sniffer on its network sees them all). */
    const sniff = (dev) => {
      const seal = dev.seal.bind(dev);
      dev.seal = (type, plaintext) => {
        const wire = seal(type, plaintext);
        recorded.uplinks.push(wire);
        return wire;
      };
      return dev;
    };

    it('step 1: the rekey is requested while the device is away; the device goes on under its current key', async function () {
      d = sniff(device(id));
      (await d.register()).status.should.equal(201);
      const r = await op('POST', `/${encodeURIComponent(id)}/rekey`, {});
      r.status.should.equal(202);
      (await row(id)).should.containEql({ keyver: 0, pendingkeyver: 1 });
      backend.output.should.match(/rekey from key version 0 to 1 requested by an operator/);
      // The server's X25519 secret is kept wrapped (40 bytes of AES key wrap), never as the raw 32 bytes.
      const cols = await keyColumns();
      Buffer.from(cols.rekeysecret, 'base64').length.should.equal(40);
      // No command can be sealed under a key that does not exist yet: queue it after the rekey.
      const queued = await op('POST', `/${encodeURIComponent(id)}/commands`, { led: true });
      queued.status.should.equal(409);
      queued.body.message.should.match(/rekey to key version 1/);
      (await d.postReading()).status.should.equal(200);
    });

    it('step 2: the device gets the rekey command but reboots before storing it: it is offered again', async function () {
      const answer = await requestJson(at(id, '/poll'), 'POST', d.seal('poll', { SEQN: next(), ack: d.ack }));
      answer.status.should.equal(200);
      recorded.answer = answer.body;
      // (The answer is dropped: nothing was stored.) After the reboot the device still uses version 0 ...
      d = sniff(reboot(d));
      d.keyver.should.equal(0);
      (await commandStates(id)).should.eql(['1:pending']);
      // ... and its registration's answer offers the rekey again, but the power fails right after the device made
      // its key pair: nothing stored, so still version 0 ...
      d.onRekeyStep = (step) => {
        if (step === 'received') throw new Error('power cut');
      };
      await d.register().catch(() => undefined);
      d = sniff(reboot(d));
      d.keyver.should.equal(0);
      // ... and at the next offer it stores the new key (the same server key: the secret kept is reused).
      (await d.register()).status.should.equal(200);
      d.keyver.should.equal(1);
      d.received.map((r) => r.cmd).should.eql([{ rekey: 1 }]);
      (await row(id)).should.containEql({ keyver: 0, pendingkeyver: 1 });
    });

    it('step 3: the device reboots before any message under the new key, then after one the server took but before its answer', async function () {
      d = sniff(reboot(d));
      d.keyver.should.equal(1);
      // The server still accepts version 0 too, until the first message under version 1 arrives.
      const old = await requestJson(at(id, '/readings'), 'POST', oldReading());
      old.status.should.equal(200, backend.output.slice(-2000));
      (await commandStates(id)).should.eql(['1:pending']);
      // A reading under version 1 with the device's public key completes the rekey on the server ...
      (await d.postReading()).status.should.equal(200);
      (await row(id)).should.containEql({ keyver: 1, pendingkeyver: null });
      const cols = await keyColumns();
      (cols.rekeysecret === null).should.be.true();
      Buffer.from(cols.keywrap, 'base64').length.should.equal(24);
      // ... the device reboots before any config answer: it sends its public key again, which the server ignores.
      d = sniff(reboot(d));
      (await d.register()).status.should.equal(200);
      (await row(id)).should.containEql({ keyver: 1, pendingkeyver: null });
      // The registration acknowledged the rekey command (the device accepted its SEQN with the key).
      (await commandStates(id)).should.eql(['1:acknowledged']);
      (await d.postReading()).status.should.equal(200);
    });

    it('step 4: afterwards the old key works for nothing, nor the master-derived key of version 1', async function () {
      (await requestJson(at(id, '/readings'), 'POST', oldReading())).status.should.equal(400);
      (await requestJson(at(id), 'POST', sealedAs(oldKey, id, 'register', { ipaddr: '10.66.0.2', ssid: 'evil', SEQN: next() }, 0))).status.should.equal(400);
      (await requestJson(at(id, '/poll'), 'POST', sealedAs(oldKey, id, 'poll', { SEQN: next() }, 0))).status.should.equal(400);
      // (The version number alone does not help: version 0's key with kv 1 does not verify.)
      (await requestJson(at(id, '/readings'), 'POST', sealedAs(oldKey, id, 'reading', { data: {}, SEQN: next() }, 1))).status.should.equal(400);
      // The master's key for version 1 (what the rekey used to send) is not the device's key.
      (await requestJson(at(id, '/readings'), 'POST', sealedAs(ring.material(id, 1), id, 'reading', { data: {}, SEQN: next() }, 1))).status.should.equal(400);
      (await row(id)).ipaddr.should.equal('127.0.0.1');
      (await d.postReading()).status.should.equal(200);
    });

    it('a passive holder of the old key who recorded the whole rekey cannot compute the new key', async function () {
      // What the attacker can read: the rekey command (sealed under the old key) with the server's public key, and
      // the device's public key (epk) in its first uplinks under version 1.
      const answer = JSON.parse(lib.decryptEnvelope(oldKey, lib.parseEnvelope(recorded.answer), id, 'config').toString());
      const command = JSON.parse(lib.decryptEnvelope(oldKey, lib.parseEnvelope(answer.commands[0]), id, 'command').toString());
      command.rekey.kv.should.equal(1);
      command.rekey.should.not.have.property('key');
      const S = Buffer.from(command.rekey.pub, 'hex');
      const withEpk = recorded.uplinks.filter((w) => w.kv === 1 && w.epk);
      withEpk.length.should.be.above(0);
      const D = Buffer.from(withEpk[0].epk, 'base64');
      // Every key the attacker can make from what it holds (K(0), S, D, the labels) is refused.
      const old = ring.deviceKey(id, 0);
      const hk = (ikm, salt, info) => Buffer.from(crypto.hkdfSync('sha256', ikm, salt, info, 16));
      const info = Buffer.concat([lib.deviceKeyInfo(id, 1, lib.HKDF_INFO_REKEY), S, D]);
      const guesses = [
        hk(old, Buffer.alloc(0), info),
        hk(Buffer.concat([S, D]), old, info),
        hk(old, Buffer.alloc(0), lib.deviceKeyInfo(id, 1)),
        lib.rekeyKey(Buffer.alloc(32), old, id, 1, S, D),
        // X25519 with its own scalar against both public keys: a shared secret, but not the device's or the server's.
        lib.rekeyKey(lib.x25519(crypto.randomBytes(32), S), old, id, 1, S, D),
        lib.rekeyKey(lib.x25519(crypto.randomBytes(32), D), old, id, 1, S, D),
      ];
      for (const g of guesses) {
        const r = await requestJson(at(id, '/readings'), 'POST', sealedAs(lib.byteKeyMaterial(g, 'hmac-sha256'), id, 'reading', { data: { forged: true }, SEQN: next() }, 1));
        r.status.should.equal(400);
      }
      // With an epk of its own the attacker could only finish a rekey that is pending (an active attack); this one is done.
      const mine = lib.x25519Pair();
      const forged = lib.rekeyKey(lib.x25519(mine.secret, S), old, id, 1, S, mine.public);
      const wire = lib.encryptToWire(lib.byteKeyMaterial(forged, 'hmac-sha256'), Buffer.from(JSON.stringify({ data: {}, SEQN: next(), ack: 1 })), id, { type: 'reading', kv: 1, epk: mine.public });
      (await requestJson(at(id, '/readings'), 'POST', wire)).status.should.equal(400);
      (await d.postReading()).status.should.equal(200);
      // The new key is nowhere in the log or the database file.
      const newKey = Buffer.from(JSON.parse(require('node:fs').readFileSync(path.join(tmp.dir, `${id.replace(/:/g, '')}.json`), 'utf8')).devices[id].key, 'hex');
      backend.output.should.not.containEql(newKey.toString('hex'));
      backend.output.should.not.containEql(newKey.toString('base64'));
      require('node:fs').readFileSync(db()).includes(newKey).should.be.false();
    });

    it('step 5: a rekey under way survives a backend restart; a command queued after it reaches the device under the new key', async function () {
      (await op('POST', `/${encodeURIComponent(id)}/rekey`, {})).status.should.equal(202);
      await backend.stop();
      await start();
      (await row(id)).should.containEql({ keyver: 1, pendingkeyver: 2 });
      await d.poll();
      d.keyver.should.equal(2);
      // (This object is the device since its last reboot.)
      d.received.map((r) => r.cmd).should.eql([{ rekey: 2 }]);
      (await d.postReading()).status.should.equal(200);
      (await row(id)).should.containEql({ keyver: 2, pendingkeyver: null });
      (await op('POST', `/${encodeURIComponent(id)}/commands`, { led: true })).status.should.equal(202);
      await d.poll();
      d.received.map((r) => r.cmd).should.eql([{ rekey: 2 }, { led: true }]);
      await d.postReading();
      await until('both acknowledged', async () => (await commandStates(id)).join() === '1:acknowledged,2:acknowledged,3:acknowledged');
      (await requestJson(at(id, '/readings'), 'POST', sealedAs(ring.material(id, 2), id, 'reading', { data: {}, SEQN: next() }, 2))).status.should.equal(400);
    });

    it('removing the device revokes every key it had; a device provisioned again needs a higher version', async function () {
      (await op('DELETE', `/${encodeURIComponent(id)}`)).status.should.equal(200);
      (await requestJson(at(id, '/readings'), 'POST', d.seal('reading', { data: {}, SEQN: next(), ack: d.ack }))).status.should.equal(400);
      for (const kv of [0, 1, 2]) {
        (await requestJson(at(id), 'POST', sealedAs(ring.material(id, kv), id, 'register', { ipaddr: '127.0.0.1', ssid: 'lab', SEQN: next() }, kv))).status.should.equal(400);
      }
      (await row(id) === undefined).should.be.true();
      const fresh = sealedAs(ring.material(id, 3), id, 'register', { ipaddr: '127.0.0.1', ssid: 'lab', SEQN: next() }, 3);
      (await requestJson(at(id), 'POST', fresh)).status.should.equal(201);
      (await row(id)).keyver.should.equal(3);
    });
  });

  it('rekey is an operator action: it needs the admin token', async function () {
    (await requestJson(at('5C:CF:7F:70:00:01', '/rekey'), 'POST', {})).status.should.equal(401);
    (await row('5C:CF:7F:70:00:01')).should.containEql({ keyver: 0, pendingkeyver: null });
  });
});

describe("auth none (E2EE_AUTH=none): the seed's plain protocol, for crypto-js and the blog firmware", function () {
  this.timeout(120000);
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const shared = lib.parseKey('hex', KEY, 'none');
  let tmp;
  let backend;
  const devices = [];
  before(async function () {
    tmp = tempDir('esp-e2ee-none-');
    backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_AUTH: 'none', E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_MAX_DEVICES: '3' } });
  });
  after(async function () {
    for (const d of devices) await d.stop();
    if (backend) await backend.stop();
    tmp.cleanup();
  });
  const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });

  it('the simulator with one shared key registers and polls in plain, posts readings, gets config and commands', async function () {
    const d = new SimDevice({ id: '5C:CF:7F:71:00:01', baseUrl: backend.url, key: shared, state: new StateFile(path.join(tmp.dir, 'a.json')), interval: 0.2 });
    devices.push(d);
    d.sealed.should.be.false();
    (await d.register()).status.should.equal(201);
    d.run();
    await until('readings stored', async () => (await op('GET', `/${encodeURIComponent(d.id)}/readings`)).body.length >= 2);
    (await op('PUT', `/${encodeURIComponent(d.id)}`, { data: { interval: 0.3 } })).status.should.equal(200);
    (await op('POST', `/${encodeURIComponent(d.id)}/commands`, { led: true })).status.should.equal(202);
    await until('the config and the command', () => d.interval === 0.3 && d.led === true);
    // Plain mode has no acknowledgement: the command log says the poll offered it (not that it arrived).
    (await op('GET', `/${encodeURIComponent(d.id)}/commands`)).body.map((c) => c.state).should.eql(['offered']);
    // A rekey needs per-device keys with hmac-sha256.
    (await op('POST', `/${encodeURIComponent(d.id)}/rekey`, {})).status.should.equal(409);
  });

  it('what it does not protect: anyone may register an id and read its config; registration is capped instead', async function () {
    // (A device the attacker never held: the plain routes ask for no key.)
    const id = '5C:CF:7F:71:00:02';
    (await requestJson(`${backend.url}/api/devices/${encodeURIComponent(id)}`, 'POST', { ipaddr: '192.0.2.5', ssid: 'lab' })).status.should.equal(201);
    (await requestJson(`${backend.url}/api/devices/${encodeURIComponent(id)}`, 'GET')).body.should.containEql({ cfgsn: 1, data: {} });
    (await requestJson(`${backend.url}/api/devices/5C:CF:7F:71:00:03`, 'POST', { ipaddr: '192.0.2.6', ssid: 'lab' })).status.should.equal(201);
    const full = await requestJson(`${backend.url}/api/devices/5C:CF:7F:71:00:04`, 'POST', { ipaddr: '192.0.2.7', ssid: 'lab' });
    full.status.should.equal(403);
    full.body.message.should.match(/maximum of 3/);
    // A known device still re-registers.
    (await requestJson(`${backend.url}/api/devices/${encodeURIComponent(id)}`, 'POST', { ipaddr: '192.0.2.8', ssid: 'lab' })).status.should.equal(200);
  });
});
