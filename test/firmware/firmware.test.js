'use strict';
require('should');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const { helper, nodes, fixtureFlow, exchange, redVersion } = require('../support/red');
const { startBackend } = require('../support/backend');
const { tempDir } = require('../support/tmp');
const { until } = require('../support/wait');
const { startMosquitto } = require('../support/mosquitto');
const { requestJson } = require('../../dist/sim/device');
const lib = require('../../dist/nodes/lib');

const firmware = path.resolve(__dirname, '..', '..', 'firmware');
const tool = path.join(firmware, 'build', 'e2ee-tool');

function make(target) {
  return spawnSync('make', ['-C', firmware, target], { encoding: 'utf8' });
}

/** Runs e2ee-tool; resolves {status, stdout, stderr}. */
function runTool(args, input = '') {
  const r = spawnSync(tool, args, { input, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('firmware (lib/e2ee on the host)', function () {
  this.timeout(300000);

  it('host tests pass under AddressSanitizer and UBSan', function () {
    const r = make('test');
    const out = r.stdout + r.stderr;
    if (r.status !== 0) throw new Error(out);
    out.should.match(/test cases: +\d+ \| +\d+ passed \| 0 failed/);
    out.should.not.match(/runtime error|AddressSanitizer/);
  });

  it('cross-compiles for the ESP8266 within budget: code <= 16 KiB, code and constants <= 18 KiB (both transports, the flash journal, the sleeper), no heap, no static object over 1.5 KiB', function () {
    const r = make('xtensa');
    const out = r.stdout + r.stderr;
    if (r.status !== 0) throw new Error(out);
    const [, code, constants] = /lib\/e2ee in the firmware: (\d+) bytes of code \+ (\d+) bytes of constants/.exec(out).map(Number);
    // (14 and 16 KiB before the journal and the sleeper, about 2 KiB; 13 and 15 KiB with HTTP only; 12 and 14 KiB
    // until the X25519 rekey's glue, about 900 bytes; BearSSL's X25519 is the core's, not counted.)
    code.should.be.belowOrEqual(16384);
    (code + constants).should.be.belowOrEqual(18432);
    out.should.match(/heap calls: none/);
    console.log(`      xtensa-lx106 -Os, linked from Device's entry points and both transports: ${code} B code + ${constants} B constants; ${/largest static object: .*/.exec(out)[0]}`);
  });

  describe('interop with the nodes, both auth modes, on Node-RED ' + redVersion(), function () {
    before(function (done) {
      const r = make('tool');
      if (r.status !== 0) return done(new Error(r.stdout + r.stderr));
      helper.startServer(done);
    });
    after(function (done) { helper.stopServer(done); });
    afterEach(() => helper.unload());

    for (const auth of ['none', 'hmac-sha256']) {
      const key = crypto.randomBytes(16).toString('hex');
      const id = '5C:CF:7F:12:34:56';
      const load = (encType = 'reading') => helper.load([nodes.aesKey, nodes.aesEncrypt, nodes.aesDecrypt], fixtureFlow('aes', { key: { format: 'hex', auth }, enc: { msgtype: encType } }), { key: { key } });

      it(`${auth}: aes-decrypt accepts readings the firmware core encrypts`, async function () {
        await load();
        for (const seqn of [0, 1, 2 ** 53 - 1]) {
          const r = runTool(['reading', '--key', key, '--auth', auth, '--deviceid', id, '--seqn', String(seqn), '--data', '{"a0":512,"heap":30000}']);
          r.status.should.equal(0, r.stderr);
          const out = await exchange('dec', 'decOut', { payload: JSON.parse(r.stdout), deviceid: id });
          out.should.have.property('msg');
          out.msg.payload.should.eql({ data: { a0: 512, heap: 30000 }, SEQN: seqn });
        }
      });

      it(`${auth}: the firmware core decrypts what aes-encrypt produces, and refuses tampering`, async function () {
        await load();
        for (const len of [0, 15, 16, 17, 100]) {
          const text = 'x'.repeat(len);
          const enc = await exchange('enc', 'encOut', { payload: text, deviceid: id });
          const body = JSON.stringify(enc.msg.payload);
          const r = runTool(['open', '--key', key, '--auth', auth, '--deviceid', id], body);
          r.status.should.equal(0, r.stderr);
          r.stdout.should.equal(text);
        }
        if (auth === 'hmac-sha256') {
          const enc = await exchange('enc', 'encOut', { payload: 'for one device', deviceid: id });
          runTool(['open', '--key', key, '--auth', auth, '--deviceid', 'another'], JSON.stringify(enc.msg.payload)).status.should.equal(1);
        }
      });

      it(`${auth}: commands from aes-encrypt run once; replays are refused`, async function () {
        await load('command');
        const enc = await exchange('enc', 'encOut', { payload: { cmd: { led: true }, SEQN: 7 }, deviceid: id });
        const body = JSON.stringify(enc.msg.payload);
        const ok = runTool(['command', '--key', key, '--auth', auth, '--deviceid', id, '--last', '6'], body);
        ok.status.should.equal(0, ok.stderr);
        ok.stdout.should.equal('SEQN 7 {"led":true}\n');
        const replay = runTool(['command', '--key', key, '--auth', auth, '--deviceid', id, '--last', '7'], body);
        replay.status.should.equal(1);
        replay.stderr.should.equal('replay\n');
        if (auth === 'hmac-sha256') {
          // Sealed as anything but a command (here a config answer), it does not verify as one.
          await helper.unload();
          await load('config');
          const config = await exchange('enc', 'encOut', { payload: { cmd: { led: true }, SEQN: 8 }, deviceid: id });
          const refused = runTool(['command', '--key', key, '--auth', auth, '--deviceid', id, '--last', '6'], JSON.stringify(config.msg.payload));
          refused.status.should.equal(1);
          refused.stderr.should.equal('rejected\n');
          runTool(['open', '--key', key, '--auth', auth, '--deviceid', id, '--type', 'config'], JSON.stringify(config.msg.payload)).stdout.should.equal('{"cmd":{"led":true},"SEQN":8}');
        }
      });
    }
  });

  describe('as a stand-in device against npm start with E2EE_AUTH=none (the seed-compatible plain mode)', function () {
    let tmp;
    let backend;
    const KEY = crypto.randomBytes(16).toString('hex');
    before(async function () {
      tmp = tempDir('esp-e2ee-fw-none-');
      backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_AUTH: 'none', E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: crypto.randomBytes(8).toString('hex'), E2EE_LOG_LEVEL: 'warn' } });
    });
    after(async function () {
      if (backend) await backend.stop();
      tmp.cleanup();
    });

    it('registers in plain, posts a reading with the shared key and gets a 200; the replay gets a 400', async function () {
      const id = '5C:CF:7F:FE:ED:02';
      (await requestJson(`${backend.url}/api/devices/${id}`, 'POST', { ipaddr: '127.0.0.1', ssid: 'lab' })).status.should.equal(201);
      const post = (seqn) => runTool(['post', '--url', backend.url, '--key', KEY, '--auth', 'none', '--deviceid', id, '--seqn', String(seqn), '--data', '{"a0":5}']);
      post(1).stdout.should.startWith('200 ');
      post(1).stdout.should.startWith('400 ');
      (await requestJson(`${backend.url}/api/devices/${id}`, 'GET')).body.should.containEql({ cfgsn: 1 });
    });
  });

  describe('as a stand-in device against the shipped backend (npm start)', function () {
    let tmp;
    let backend;
    const KEY = crypto.randomBytes(16).toString('hex');
    before(async function () {
      tmp = tempDir('esp-e2ee-fw-');
      backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: crypto.randomBytes(8).toString('hex'), E2EE_LOG_LEVEL: 'warn' } });
    });
    after(async function () {
      if (backend) await backend.stop();
      tmp.cleanup();
    });

    it('posts a reading over loopback HTTP and gets a 200; the same reading again is refused', async function () {
      const id = '5C:CF:7F:FE:ED:01';
      // npm start's per-device scope: the firmware holds its own key, derived from the master (as esp-e2ee-keys prints it).
      const deviceKey = lib.deriveDeviceKey(Buffer.from(KEY, 'hex'), id).toString('hex');
      // Registration is sealed too (SEQN 0, from the same counter as the readings); a plain one is refused.
      (await requestJson(`${backend.url}/api/devices/${id}`, 'POST', { ipaddr: '127.0.0.1', ssid: 'lab' })).status.should.equal(401);
      const sealedRegister = runTool(['seal', '--key', deviceKey, '--auth', 'hmac-sha256', '--deviceid', id, '--type', 'register', '--kv', '0'], '{"ipaddr":"127.0.0.1","ssid":"lab","rxbuf":1535,"SEQN":0,"ack":0}');
      sealedRegister.status.should.equal(0, sealedRegister.stderr);
      const registered = await requestJson(`${backend.url}/api/devices/${id}`, 'POST', JSON.parse(sealedRegister.stdout));
      registered.status.should.equal(201);
      // The answer is sealed for this device as a config answer to request 0: the firmware core opens it.
      const answer = runTool(['open', '--key', deviceKey, '--auth', 'hmac-sha256', '--deviceid', id, '--type', 'config'], JSON.stringify(registered.body));
      answer.status.should.equal(0, answer.stderr);
      JSON.parse(answer.stdout).should.containEql({ re: 0, cfgsn: 1, commands: [], more: false });
      const post = (seqn) => runTool(['post', '--url', backend.url, '--key', deviceKey, '--auth', 'hmac-sha256', '--deviceid', id, '--seqn', String(seqn), '--data', '{"a0":700}']);
      // The master itself is no device's key.
      runTool(['post', '--url', backend.url, '--key', KEY, '--auth', 'hmac-sha256', '--deviceid', id, '--seqn', '99', '--data', '{}']).stdout.should.startWith('400 ');
      const first = post(1);
      first.status.should.equal(0, first.stdout + first.stderr);
      first.stdout.should.startWith('200 ');
      const again = post(1);
      again.status.should.equal(1);
      again.stdout.should.startWith('400 ');
      post(2).stdout.should.startWith('200 ');
    });
  });
  describe('the firmware\'s own device (e2ee::Device, run by e2ee-tool) against npm start: every run is one boot', function () {
    const TOKEN = crypto.randomBytes(12).toString('hex');

    /** Runs the device for `cycles` cycles on its EEPROM file; resolves its serial lines. */
    function boot(backend, { id, key, auth, flash, cycles = 2 }) {
      const r = runTool(['device', '--url', backend.url, '--key', key, '--auth', auth, '--deviceid', id, '--flash', flash, '--cycles', String(cycles), '--pause-ms', '300']);
      if (r.status !== 0) throw new Error(`e2ee-tool device exited ${r.status}:\n${r.stdout}${r.stderr}`);
      return r.stdout.split('\n').filter(Boolean);
    }
    const operator = (backend, id) => (method, suffix, body) => requestJson(`${backend.url}/api/devices/${encodeURIComponent(id)}${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });
    /** The registry's row of the device, from the operator's list. */
    const registryRow = async (backend, id) => {
      const list = await requestJson(`${backend.url}/api/devices`, 'GET', undefined, { authorization: `Bearer ${TOKEN}` });
      const rows = Array.isArray(list.body) ? list.body : list.body.devices;
      return rows.find((d) => d.deviceid === id);
    };

    for (const auth of ['hmac-sha256', 'none']) {
      describe(`${auth}${auth === 'none' ? ' (E2EE_AUTH=none, the seed-compatible plain mode)' : ' (the default: per-device keys)'}`, function () {
        let tmp;
        let backend;
        const MASTER = crypto.randomBytes(16).toString('hex');
        before(async function () {
          const r = make('tool');
          if (r.status !== 0) throw new Error(r.stdout + r.stderr);
          tmp = tempDir('esp-e2ee-fw-device-');
          backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: MASTER, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn', ...(auth === 'none' ? { E2EE_AUTH: 'none' } : {}) } });
        });
        after(async function () {
          if (backend) await backend.stop();
          tmp.cleanup();
        });

        it(auth === 'hmac-sha256'
          ? 'registers, sends readings, runs a command and acknowledges it, takes a rekey, and after a reboot works under the new key'
          : 'registers in plain, sends sealed readings, and runs a command from its poll', async function () {
          const id = auth === 'none' ? '5C:CF:7F:D0:00:02' : '5C:CF:7F:D0:00:01';
          const key = auth === 'none' ? MASTER : lib.deriveDeviceKey(Buffer.from(MASTER, 'hex'), id).toString('hex');
          const dev = { id, key, auth, flash: path.join(tmp.dir, `${auth}.eeprom`) };
          const op = operator(backend, id);

          // Boot 1, on an erased EEPROM.
          let lines = boot(backend, dev);
          lines.should.containEql('[e2ee] storage: journal erased: SEQN restarts at 0 (if refused: POST /api/devices/<id>/reset), commands are accepted from SEQN 1 again');
          lines.should.containEql(`[e2ee] register as ${id}: HTTP 201`);
          lines.filter((l) => / reading SEQN \d+: HTTP 200$/.test(l)).length.should.equal(2);
          const row = await registryRow(backend, id);
          row.should.containEql({ deviceid: id, ipaddr: '127.0.0.1', ssid: 'host', rxbuf: 1535 });
          (await op('GET', '/readings')).body.length.should.equal(2);

          // A command, queued by the operator; the device picks it up from its poll at the next boot.
          (await op('POST', '/commands', { led: true })).status.should.equal(202);
          lines = boot(backend, dev);
          lines.should.not.containEql('[e2ee] storage: journal erased: SEQN restarts at 0 (if refused: POST /api/devices/<id>/reset), commands are accepted from SEQN 1 again');
          lines.should.containEql(`[e2ee] register as ${id}: HTTP 200`);
          lines.should.containEql('[board] led on');
          lines.should.containEql('[e2ee] command 1 via poll: {"led":true}');
          lines.filter((l) => /HTTP 400/.test(l)).should.eql([]);  // SEQNs resume past the reserved block: none refused
          const [cmd] = (await op('GET', '/commands')).body;
          cmd.should.containEql({ seqn: 1, state: auth === 'none' ? 'offered' : 'acknowledged' });
          if (auth === 'none') return;

          // A rekey: the device stores the new key before it acknowledges it; the server moves to version 1.
          (await op('POST', '/rekey', {})).status.should.equal(202);
          lines = boot(backend, dev);
          lines.should.containEql('[e2ee] command 2 via poll: rekey to key version 1');
          lines.slice(-1)[0].should.equal('[tool] ack 2 kv 1 registered 1');
          (await op('GET', '/commands')).body[0].should.containEql({ seqn: 2, state: 'acknowledged' });
          (await registryRow(backend, id)).should.containEql({ keyver: 1 });

          // Boot 4: the key from its EEPROM; readings accepted; the old key is refused from now on.
          lines = boot(backend, dev);
          lines.should.containEql('[e2ee] using the key of version 1 from a rekey');
          lines.filter((l) => / reading SEQN \d+: HTTP 200$/.test(l)).length.should.equal(2);
          runTool(['post', '--url', backend.url, '--key', key, '--auth', 'hmac-sha256', '--deviceid', id, '--kv', '0', '--seqn', '100000', '--data', '{}']).stdout.should.startWith('400 ');
          (await op('GET', '/readings')).body.length.should.equal(8);
        });
      });
    }
  });

  describe('the firmware\'s own device over MQTT (e2ee::MqttTransport in e2ee-tool, libmosquitto) against npm start: every run is one boot', function () {
    this.timeout(120000);
    const TOKEN = crypto.randomBytes(12).toString('hex');
    const MASTER = crypto.randomBytes(16).toString('hex');
    const master = Buffer.from(MASTER, 'hex');
    const ID = '5C:CF:7F:D0:00:03';

    for (const brokerKind of ['embedded', 'mosquitto']) {
      describe(brokerKind === 'embedded' ? 'through the embedded broker (E2EE_MQTT=embedded)' : 'through Mosquitto 2 with the files of esp-e2ee-keys --mosquitto', function () {
        let tmp;
        let backend;
        let broker;
        before(async function () {
          const r = make('tool');
          if (r.status !== 0) throw new Error(r.stdout + r.stderr);
          tmp = tempDir('esp-e2ee-fw-mqtt-');
          if (brokerKind === 'mosquitto') {
            fs.mkdirSync(path.join(tmp.dir, 'mosquitto'));
            broker = await startMosquitto(path.join(tmp.dir, 'mosquitto'), { keyHex: MASTER, ids: [ID] });
          }
          backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: MASTER, E2EE_ADMIN_TOKEN: TOKEN, ...(broker ? { E2EE_MQTT: broker.url } : {}) } });
          await until('the flow connected to the broker', () => /Connected to broker/.test(backend.output), 20000);
        });
        after(async function () {
          if (backend) await backend.stop();
          if (broker) await broker.stop();
          tmp.cleanup();
        });

        it('registers, sends readings, gets a command queued while it was off as soon as it connects, takes a rekey, and after a reboot works under the new key', async function () {
          const port = broker ? broker.port : backend.mqttPort;
          const key = lib.deriveDeviceKey(master, ID).toString('hex');
          const flash = path.join(tmp.dir, 'mqtt.eeprom');
          const boot = (cycles = 2) => {
            const r = runTool(['device', '--url', 'http://127.0.0.1:9', '--key', key, '--auth', 'hmac-sha256', '--deviceid', ID, '--flash', flash,
              '--cycles', String(cycles), '--pause-ms', '300', '--mqtt', `127.0.0.1:${port}`, '--mqtt-user', lib.brokerUser(ID),
              '--mqtt-password', lib.brokerPassword(master, ID)]);
            if (r.status !== 0) throw new Error(`e2ee-tool device exited ${r.status}:\n${r.stdout}${r.stderr}`);
            return r.stdout.split('\n').filter(Boolean);
          };
          const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices/${encodeURIComponent(ID)}${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });
          const row = async () => {
            const list = (await requestJson(`${backend.url}/api/devices`, 'GET', undefined, { authorization: `Bearer ${TOKEN}` })).body;
            return (Array.isArray(list) ? list : list.devices).find((d) => d.deviceid === ID);
          };
          const readings = async () => (await op('GET', '/readings')).body.length;

          // Boot 1: registration and polls answered on down, readings published (no answer over MQTT).
          let lines = boot();
          lines.should.containEql(`[e2ee] device ${ID}, auth hmac-sha256, backend mqtt://127.0.0.1:${port}`);
          lines.should.containEql(`[e2ee] register as ${ID}: MQTT 200`);
          lines.filter((l) => / reading SEQN \d+: MQTT 202$/.test(l)).length.should.equal(2);
          await until('both readings stored', async () => (await readings()) === 2, 5000);
          (await row()).should.containEql({ deviceid: ID, transport: 'mqtt', ipaddr: '127.0.0.1', rxbuf: 1535 });

          // Off: the operator's command is published at once; the broker keeps it in the device's session.
          (await op('POST', '/commands', { led: true })).status.should.equal(202);
          lines = boot();
          lines.should.containEql('[e2ee] command 1 via mqtt: {"led":true}');
          lines.should.containEql('[board] led on');
          lines.filter((l) => /MQTT -\d|refused: (?!replay)/.test(l)).should.eql([]);  // (a command offered again in an answer is a replay)
          await until('command 1 acknowledged', async () => (await op('GET', '/commands')).body[0].state === 'acknowledged', 5000);

          // A rekey over MQTT: the X25519 exchange; the server moves to version 1 at the first message under it.
          (await op('POST', '/rekey', {})).status.should.equal(202);
          lines = boot();
          // (It reaches the device while the registration waits for its answer, which is sealed under the old key: the
          // device takes the rekey from that answer, after it verified, rather than from down.)
          lines.should.containEql('[e2ee] command 2 via poll: rekey to key version 1');
          lines.slice(-1)[0].should.equal('[tool] ack 2 kv 1 registered 1');
          await until('the rekey completed', async () => (await row()).keyver === 1, 5000);

          // Boot 4: the key from its EEPROM.
          lines = boot();
          lines.should.containEql('[e2ee] using the key of version 1 from a rekey');
          lines.filter((l) => / reading SEQN \d+: MQTT 202$/.test(l)).length.should.equal(2);
          await until('all 8 readings stored', async () => (await readings()) === 8, 5000);
          lines.filter((l) => /MQTT -\d|refused: (?!replay)/.test(l)).should.eql([]);  // (a command offered again in an answer is a replay)
        });
      });
    }
  });
  describe('a sleeping device (E2EE_SLEEP_S: the firmware\'s e2ee::Device in e2ee-tool, one boot per wake, RTC memory in a file) against npm start', function () {
    const TOKEN = crypto.randomBytes(12).toString('hex');
    const MASTER = crypto.randomBytes(16).toString('hex');
    const master = Buffer.from(MASTER, 'hex');
    let tmp;
    let backend;
    before(async function () {
      const r = make('tool');
      if (r.status !== 0) throw new Error(r.stdout + r.stderr);
      tmp = tempDir('esp-e2ee-fw-sleep-');
      backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: MASTER, E2EE_ADMIN_TOKEN: TOKEN } });
      await until('the flow connected to the broker', () => /Connected to broker/.test(backend.output), 20000);
    });
    after(async function () {
      if (backend) await backend.stop();
      tmp.cleanup();
    });

    for (const transport of ['http', 'mqtt']) {
      it(`over ${transport.toUpperCase()}: 24 wakes, one exchange each after the registration; a command, a config change and a rekey arrive with the answers; few flash writes`, async function () {
        const id = transport === 'http' ? '5C:CF:7F:D0:00:11' : '5C:CF:7F:D0:00:12';
        const key = lib.deriveDeviceKey(master, id).toString('hex');
        const files = ['--flash', path.join(tmp.dir, `${transport}.flash`), '--rtc', path.join(tmp.dir, `${transport}.rtc`)];
        const link = transport === 'http' ? ['--url', backend.url]
          : ['--url', 'http://127.0.0.1:9', '--mqtt', `127.0.0.1:${backend.mqttPort}`, '--mqtt-user', lib.brokerUser(id), '--mqtt-password', lib.brokerPassword(master, id)];
        const wakes = (n) => {
          const r = runTool(['device', '--key', key, '--auth', 'hmac-sha256', '--deviceid', id, '--sleep', '900', '--wakes', String(n), '--pause-ms', '50', ...files, ...link]);
          if (r.status !== 0) throw new Error(`e2ee-tool device exited ${r.status}:\n${r.stdout}${r.stderr}`);
          const lines = r.stdout.split('\n').filter(Boolean);
          const per = lines.map((l) => /^\[tool\] wake \d+: exchanges (\d+), flash writes (\d+), erases (\d+)/.exec(l)).filter(Boolean).map((m) => m.slice(1).map(Number));
          per.length.should.equal(n);
          return { lines, per };
        };
        const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices/${encodeURIComponent(id)}${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });
        const row = async () => {
          const list = (await requestJson(`${backend.url}/api/devices`, 'GET', undefined, { authorization: `Bearer ${TOKEN}` })).body;
          return (Array.isArray(list) ? list : list.devices).find((d) => d.deviceid === id);
        };
        const readings = async () => (await op('GET', '/readings')).body.length;

        // Wakes 1-8: registration (declaring the sleep) at the first, then one reading per wake, answered with the config.
        let run = wakes(8);
        run.lines.should.containEql(`[e2ee] device ${id}, auth hmac-sha256, backend ${transport === 'http' ? backend.url : `mqtt://127.0.0.1:${backend.mqttPort}`}, sleeps between readings`);
        run.per.map((p) => p[0]).should.eql([2, 1, 1, 1, 1, 1, 1, 1]);
        run.lines.filter((l) => /^\[e2ee\] device /.test(l)).length.should.equal(1);  // the boot line at power-on only
        run.lines.filter((l) => /^\[e2ee\] wake \d+: awake \d+ ms, \d exchanges?, reading sent; sleeping \d+ s$/.test(l)).length.should.equal(8);
        await until('8 readings stored', async () => (await readings()) === 8, 5000);
        const r1 = await row();
        r1.should.containEql({ sleep: 900, online: true, transport });
        Date.parse(r1.nextwake).should.be.above(Date.parse(r1.lastseen));

        // A command and a config change while it sleeps: both come with the next wake's answer, in that one exchange.
        (await op('POST', '/commands', { led: true })).status.should.equal(202);
        (await op('PUT', '', { data: { interval: 600 } })).status.should.equal(200);
        run = wakes(8);
        run.lines.should.containEql('[board] led on');
        run.lines.filter((l) => /command 1 via (poll|mqtt): \{"led":true\}/.test(l)).length.should.equal(1);
        run.lines.should.containEql('[e2ee] config 2: interval 600 s');
        run.per.every((p) => p[0] === 1).should.be.true(run.lines.join('\n'));
        await until('command 1 acknowledged', async () => (await op('GET', '/commands')).body[0].state === 'acknowledged', 5000);

        // A rekey while it sleeps: taken from the next answer, stored before it is acknowledged; the server follows.
        (await op('POST', '/rekey', {})).status.should.equal(202);
        run = wakes(8);
        run.lines.filter((l) => /command 2 via (poll|mqtt): rekey to key version 1/.test(l)).length.should.equal(1);
        await until('the rekey completed', async () => (await row()).keyver === 1, 5000);
        run.per.every((p) => p[0] === 1).should.be.true(run.lines.join('\n'));
        await until('24 readings stored', async () => (await readings()) === 24, 5000);
        run.lines.filter((l) => /refused|HTTP 4|MQTT -/.test(l) && !/refused: replay/.test(l)).should.eql([]);
        // Flash: the counter lives in RTC memory across sleeps; the journal is written for the reservation, the
        // command's ack and the rekey only, and erased never after the first format.
        const writes = run.per.reduce((n, p) => n + p[1], 0);
        writes.should.be.belowOrEqual(4);
        run.per.reduce((n, p) => n + p[2], 0).should.equal(0);
      });
    }
  });
});

