'use strict';
require('should');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const { helper, nodes, fixtureFlow, exchange, redVersion } = require('../support/red');
const { startBackend } = require('../support/backend');
const { tempDir } = require('../support/tmp');
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

  it('cross-compiles for the ESP8266 within budget: code <= 12 KiB, code and constants <= 14 KiB, no heap, no static object over 1.5 KiB', function () {
    const r = make('xtensa');
    const out = r.stdout + r.stderr;
    if (r.status !== 0) throw new Error(out);
    const [, code, constants] = /lib\/e2ee in the firmware: (\d+) bytes of code \+ (\d+) bytes of constants/.exec(out).map(Number);
    code.should.be.belowOrEqual(12288);
    (code + constants).should.be.belowOrEqual(14336);
    out.should.match(/heap calls: none/);
    console.log(`      xtensa-lx106 -Os, linked from Device's entry points: ${code} B code + ${constants} B constants; ${/largest static object: .*/.exec(out)[0]}`);
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
});

