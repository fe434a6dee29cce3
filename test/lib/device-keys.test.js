'use strict';
require('should');
const crypto = require('node:crypto');
const lib = require('../../dist/nodes/lib');
const { openssl } = require('../support/openssl');

describe('lib/device-keys: per-device keys under a master key', function () {
  const master = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');

  it('derives the documented HKDF-SHA256 key, as the openssl CLI computes it', function () {
    for (const [id, version] of [['5C:CF:7F:AA:00:01', 0], ['5C:CF:7F:AA:00:01', 1], ['kitchen-sensor', 4294967295], ['ü-device', 7]]) {
      const info = Buffer.concat([Buffer.from('esp-e2ee v1 device'), Buffer.from([0]), Buffer.from(id, 'utf8'), Buffer.from([version >>> 24, (version >>> 16) & 255, (version >>> 8) & 255, version & 255])]);
      lib.deviceKeyInfo(id, version).equals(info).should.be.true();
      const oracle = openssl(['kdf', '-keylen', '16', '-kdfopt', 'digest:SHA256', '-kdfopt', `hexkey:${master.toString('hex')}`, '-kdfopt', `hexinfo:${info.toString('hex')}`, 'HKDF']).trim().replace(/:/g, '').toLowerCase();
      lib.deriveDeviceKey(master, id, version).toString('hex').should.equal(oracle);
    }
  });

  it('matches the README\'s test vector', function () {
    lib.deriveDeviceKey(master, '5C:CF:7F:AA:00:01', 0).toString('hex').should.equal('df775bd5a4f2283b3780462f7b11c017');
  });

  it('gives every device and every version its own key', function () {
    const keys = new Set();
    for (const id of ['a', 'b', 'A', 'a\u0000']) for (const v of [0, 1, 2]) keys.add(lib.deriveDeviceKey(master, id, v).toString('hex'));
    keys.size.should.equal(12);
  });

  it('refuses a missing or oversized device id and a bad version, with catalogued errors', function () {
    for (const [id, v, code] of [['', 0, 'no-deviceid'], ['x'.repeat(256), 0, 'bad-deviceid'], ['a', -1, 'bad-key-version'], ['a', 2 ** 32, 'bad-key-version'], ['a', 1.5, 'bad-key-version'], ['a', NaN, 'bad-key-version']]) {
      (() => lib.deriveDeviceKey(master, id, v)).should.throw(lib.E2eeError, { code });
    }
  });

  it('a keyring derives on demand, keeps a bounded cache, and its keys round-trip with the device\'s own', function () {
    const ring = new lib.DeviceKeyring(master, 'hmac-sha256', 100);
    for (let i = 0; i < 1000; i++) ring.material(`dev${i}`);
    ring.cached.should.equal(100);
    const deviceKey = lib.byteKeyMaterial(lib.deriveDeviceKey(master, 'dev7', 0), 'hmac-sha256');
    const wire = lib.encryptToWire(deviceKey, Buffer.from('{"SEQN":1}'), 'dev7');
    lib.decryptEnvelope(ring.material('dev7'), lib.parseEnvelope(wire), 'dev7').toString().should.equal('{"SEQN":1}');
    // Another device's key, or another version, does not verify.
    (() => lib.decryptEnvelope(ring.material('dev8'), lib.parseEnvelope(wire), 'dev7')).should.throw(lib.E2eeError, { code: 'decrypt-failed' });
    (() => lib.decryptEnvelope(ring.material('dev7', 1), lib.parseEnvelope(wire), 'dev7')).should.throw(lib.E2eeError, { code: 'decrypt-failed' });
    // A master key of any AES size gives 16-byte device keys.
    lib.deriveDeviceKey(crypto.randomBytes(32), 'x').length.should.equal(16);
  });
});

describe('esp-e2ee-keys: a device\'s secrets.h from the master key', function () {
  const fs = require('node:fs');
  const path = require('node:path');
  const { execFileSync, spawnSync } = require('node:child_process');
  const { tempDir } = require('../support/tmp');
  const bin = path.resolve(__dirname, '..', '..', 'dist', 'sim', 'keys.js');
  const master = crypto.randomBytes(16).toString('hex');
  let tmp;
  beforeEach(() => {
    tmp = tempDir('esp-e2ee-keys-');
    fs.writeFileSync(tmp.file('aes-key.hex'), `${master}\n`);
  });
  afterEach(() => tmp.cleanup());
  const run = (args, env = {}) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, E2EE_KEY: '', E2EE_DATA_DIR: '', ...env } });

  it('prints a complete secrets.h with the id, the device key (not the master) and the URL; it compiles', function () {
    const r = run(['5C:CF:7F:AA:00:09', '--data', tmp.dir, '--url', 'http://192.168.4.2:1880/', '--version', '2']);
    r.status.should.equal(0, r.stderr);
    const expected = lib.deriveDeviceKey(Buffer.from(master, 'hex'), '5C:CF:7F:AA:00:09', 2).toString('hex');
    r.stdout.should.containEql(`#define E2EE_KEY_HEX "${expected}"`);
    r.stdout.should.containEql('#define E2EE_DEVICE_ID "5C:CF:7F:AA:00:09"');
    r.stdout.should.containEql('#define E2EE_BACKEND_URL "http://192.168.4.2:1880"');
    r.stdout.should.containEql('#define E2EE_KEY_VERSION 2');
    r.stdout.should.containEql('#define E2EE_WIFI_SSID');
    r.stdout.should.not.containEql(master);
    // A C++ compiler takes it, and the values are what they say.
    fs.writeFileSync(tmp.file('secrets.h'), r.stdout);
    fs.writeFileSync(tmp.file('check.cpp'), '#include "secrets.h"\nstatic_assert(sizeof(E2EE_KEY_HEX) == 33, "key");\nstatic_assert(E2EE_AUTH_HMAC == 1, "auth");\nconst char *id = E2EE_DEVICE_ID;\n');
    execFileSync('g++', ['-std=c++17', '-fsyntax-only', tmp.file('check.cpp')]);
  });

  it('takes the master from E2EE_KEY, writes --out with mode 0600, and generates ids', function () {
    const r = run(['--generate', '--out', tmp.file('out.h')], { E2EE_KEY: master });
    r.status.should.equal(0, r.stderr);
    (fs.statSync(tmp.file('out.h')).mode & 0o777).should.equal(0o600);
    const text = fs.readFileSync(tmp.file('out.h'), 'utf8');
    const id = /#define E2EE_DEVICE_ID "(esp-[0-9a-f]{12})"/.exec(text)[1];
    text.should.containEql(lib.deriveDeviceKey(Buffer.from(master, 'hex'), id, 0).toString('hex'));
    r.stderr.should.match(new RegExp(`wrote .*out\\.h for device ${id}`));
  });

  it('refuses a bad id, version, URL or master with a clear line and status 2, never showing the key', function () {
    for (const [args, message] of [[['bad id', '--data', tmp.dir], /device id is 1 to 64/], [['x', '--data', tmp.dir, '--version', '-1'], /--version/], [['x', '--data', tmp.dir, '--url', 'ftp://x'], /--url/], [['x', '--key', 'abc123'], /32, 48 or 64 hex digits/], [['x', '--data', tmp.file('nowhere')], /no master key/], [[], /name one device id/]]) {
      const r = run(args);
      r.status.should.equal(2, String(args));
      r.stderr.should.match(message);
      r.stdout.should.equal('');
      r.stderr.should.not.containEql(master);
    }
  });
});
