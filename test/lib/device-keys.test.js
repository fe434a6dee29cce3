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

  it('a keyring derives on demand, the same keys as node:crypto\'s HKDF, which round-trip with the device\'s own', function () {
    const ring = new lib.DeviceKeyring(master, 'hmac-sha256');
    for (const [id, v] of [['dev7', 0], ['dev7', 3], ['ü', 4294967295]]) {
      ring.deviceKey(id, v).equals(lib.deriveDeviceKey(master, id, v)).should.be.true();
      const m = ring.material(id, v);
      const ref = lib.byteKeyMaterial(lib.deriveDeviceKey(master, id, v), 'hmac-sha256');
      m.encKey.equals(ref.encKey).should.be.true();
      m.macKey.equals(ref.macKey).should.be.true();
    }
    const deviceKey = lib.byteKeyMaterial(lib.deriveDeviceKey(master, 'dev7', 0), 'hmac-sha256');
    const wire = lib.encryptToWire(deviceKey, Buffer.from('{"SEQN":1}'), 'dev7');
    lib.decryptEnvelope(ring.material('dev7'), lib.parseEnvelope(wire), 'dev7').toString().should.equal('{"SEQN":1}');
    // Another device's key, or another version, does not verify.
    (() => lib.decryptEnvelope(ring.material('dev8'), lib.parseEnvelope(wire), 'dev7')).should.throw(lib.E2eeError, { code: 'decrypt-failed' });
    (() => lib.decryptEnvelope(ring.material('dev7', 1), lib.parseEnvelope(wire), 'dev7')).should.throw(lib.E2eeError, { code: 'decrypt-failed' });
    // A master key of any AES size gives 16-byte device keys.
    lib.deriveDeviceKey(crypto.randomBytes(32), 'x').length.should.equal(16);
  });

  it('a known id costs the keyring the same work as an unknown one: nothing is cached per id', function () {
    // Counts the HMACs and AES key schedules one lookup makes; a cache would make the second lookup of an id cheaper.
    const ring = new lib.DeviceKeyring(master, 'hmac-sha256');
    const counts = {};
    const real = { createHmac: crypto.createHmac, createDecipheriv: crypto.createDecipheriv, hkdfSync: crypto.hkdfSync };
    for (const name of Object.keys(real)) {
      crypto[name] = (...args) => {
        counts[name] = (counts[name] ?? 0) + 1;
        return real[name](...args);
      };
    }
    const work = (id) => {
      for (const k of Object.keys(counts)) delete counts[k];
      ring.material(id, 0);
      return { ...counts };
    };
    try {
      const first = work('5C:CF:7F:00:00:01');
      first.should.eql({ createHmac: 4, createDecipheriv: 1 });
      work('5C:CF:7F:00:00:01').should.eql(first);
      for (let i = 0; i < 50; i++) work('5C:CF:7F:00:00:01');
      work('5C:CF:7F:00:00:01').should.eql(first);
      work('never-seen-before').should.eql(first);
    } finally {
      Object.assign(crypto, real);
    }
  });
});

describe('lib/rekey: the X25519 exchange and the wrapping of the keys it makes', function () {
  const fs = require('node:fs');
  const { tempDir } = require('../support/tmp');
  const master = crypto.randomBytes(16);
  const id = '5C:CF:7F:AA:00:01';

  it('X25519 agrees with the openssl CLI, and both sides derive the same K(v+1)', function () {
    const tmp = tempDir('esp-e2ee-x25519-');
    try {
      const server = lib.x25519Pair();
      const device = lib.x25519Pair();
      lib.x25519Public(server.secret).equals(server.public).should.be.true();
      // openssl pkeyutl -derive with the server's secret (PKCS#8 DER) and the device's public key (SPKI DER).
      fs.writeFileSync(tmp.file('s.der'), Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), server.secret]));
      fs.writeFileSync(tmp.file('d.der'), Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), device.public]));
      const { execFileSync } = require('node:child_process');
      execFileSync('openssl', ['pkeyutl', '-derive', '-keyform', 'DER', '-inkey', tmp.file('s.der'), '-peerform', 'DER', '-peerkey', tmp.file('d.der'), '-out', tmp.file('z')]);
      const shared = fs.readFileSync(tmp.file('z'));
      lib.x25519(server.secret, device.public).equals(shared).should.be.true();
      lib.x25519(device.secret, server.public).equals(shared).should.be.true();
      // K(v+1) = HKDF(shared, salt = K(v), info = label ‖ 0 ‖ id ‖ uint32be(v+1) ‖ S ‖ D), checked with openssl kdf.
      const old = lib.deriveDeviceKey(master, id, 0);
      const info = Buffer.concat([Buffer.from('esp-e2ee v1 rekey\u0000' + id), Buffer.from([0, 0, 0, 1]), server.public, device.public]);
      const oracle = execFileSync('openssl', ['kdf', '-keylen', '16', '-kdfopt', 'digest:SHA256', '-kdfopt', `hexkey:${shared.toString('hex')}`, '-kdfopt', `hexsalt:${old.toString('hex')}`, '-kdfopt', `hexinfo:${info.toString('hex')}`, 'HKDF'], { encoding: 'utf8' }).trim().replace(/:/g, '').toLowerCase();
      lib.rekeyKey(shared, old, id, 1, server.public, device.public).toString('hex').should.equal(oracle);
    } finally {
      tmp.cleanup();
    }
  });

  it('refuses a small-order public key (all-zero shared secret) as a message that does not open', function () {
    const server = lib.x25519Pair();
    (() => lib.x25519(server.secret, Buffer.alloc(32))).should.throw(lib.E2eeError, { code: 'decrypt-failed' });
  });

  it('wraps with AES-256 key wrap per device, version and purpose; anything else does not unwrap', function () {
    const key = crypto.randomBytes(16);
    const wrapped = lib.wrapKey(master, id, 1, 'key', key);
    Buffer.from(wrapped, 'base64').length.should.equal(24);
    // RFC 3394 is deterministic; the openssl CLI unwraps it with the same key-encryption key.
    lib.wrapKey(master, id, 1, 'key', key).should.equal(wrapped);
    lib.unwrapKey(master, id, 1, 'key', wrapped).equals(key).should.be.true();
    for (const [m, d, v, p] of [[crypto.randomBytes(16), id, 1, 'key'], [master, 'other', 1, 'key'], [master, id, 2, 'key'], [master, id, 1, 'secret']]) {
      (() => lib.unwrapKey(m, d, v, p, wrapped)).should.throw(lib.E2eeError, { code: 'decrypt-failed' });
    }
  });

  it('a keyring with a vault: the current version from its wrapped key, the pending one only through the exchange', async function () {
    const rec = { keyver: 0 };
    const vault = {
      keyRecord: () => rec,
      offerRekey: async (_id, kv, secret) => {
        if (rec.pending !== kv) return undefined;
        rec.rekeysecret ??= secret;
        return rec.rekeysecret;
      },
    };
    const ring = new lib.DeviceKeyring(master, 'hmac-sha256', vault);
    ring.canRekey.should.be.true();
    new lib.DeviceKeyring(master, 'hmac-sha256').canRekey.should.be.false();
    await ring.rekeyOffer(id, 1).should.be.rejectedWith(lib.E2eeError, { code: 'no-rekey' });
    rec.pending = 1;
    const S = await ring.rekeyOffer(id, 1);
    // Sealed again, the command carries the same public key.
    (await ring.rekeyOffer(id, 1)).equals(S).should.be.true();
    // The pending version: never the master's key, only with the device's public key.
    (() => ring.open(id, 1)).should.throw(lib.E2eeError, { code: 'decrypt-failed' });
    const device = lib.x25519Pair();
    const K1 = lib.rekeyKey(lib.x25519(device.secret, S), lib.deriveDeviceKey(master, id, 0), id, 1, S, device.public);
    const opened = ring.open(id, 1, device.public);
    opened.material.macKey.equals(lib.byteKeyMaterial(K1, 'hmac-sha256').macKey).should.be.true();
    lib.unwrapKey(master, id, 1, 'key', opened.keywrap).equals(K1).should.be.true();
    // Promoted: the current version comes from the wrapped key, whatever epk a message carries.
    Object.assign(rec, { keyver: 1, keywrap: opened.keywrap });
    delete rec.pending;
    delete rec.rekeysecret;
    ring.open(id, 1, lib.x25519Pair().public).material.macKey.equals(opened.material.macKey).should.be.true();
    ring.open(id, 1).should.not.have.property('keywrap');
    // An unknown device: the master's key of any version (the replay guard refuses revoked ones).
    ring.open('other', 5).material.macKey.equals(ring.material('other', 5).macKey).should.be.true();
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
    // Without --url and without a backend that printed its URL: refused, and no file (never an empty secrets.h).
    const refused = run(['--generate', '--data', tmp.file('no-backend'), '--out', tmp.file('out.h')], { E2EE_KEY: master });
    refused.status.should.equal(2);
    refused.stderr.should.match(/no --url, and no backend has printed its device URL/);
    fs.existsSync(tmp.file('out.h')).should.be.false();
    // A directory that does not exist: one line, nothing left behind.
    const nowhere = run(['--generate', '--url', 'http://192.168.4.2:1880', '--out', tmp.file('no/such/dir/out.h')], { E2EE_KEY: master });
    nowhere.status.should.equal(2);
    nowhere.stderr.should.match(/cannot write .*ENOENT/);
    // npm start wrote its device URL into the data dir: that one, said on stderr, with a warning for loopback.
    fs.writeFileSync(tmp.file('device-url'), 'http://127.0.0.1:1880\n');
    const r = run(['--generate', '--data', tmp.dir, '--out', tmp.file('out.h')], { E2EE_KEY: master });
    r.status.should.equal(0, r.stderr);
    (fs.statSync(tmp.file('out.h')).mode & 0o777).should.equal(0o600);
    const text = fs.readFileSync(tmp.file('out.h'), 'utf8');
    const id = /#define E2EE_DEVICE_ID "(esp-[0-9a-f]{12})"/.exec(text)[1];
    text.should.containEql(lib.deriveDeviceKey(Buffer.from(master, 'hex'), id, 0).toString('hex'));
    r.stderr.should.match(new RegExp(`wrote .*out\\.h for device ${id}`));
    text.should.containEql('#define E2EE_BACKEND_URL "http://127.0.0.1:1880"');
    r.stderr.should.match(/no --url: secrets\.h says http:\/\/127\.0\.0\.1:1880, the device URL npm start printed/);
    r.stderr.should.match(/warning: no ESP8266 can reach http:\/\/127\.0\.0\.1:1880/);
    fs.readdirSync(tmp.dir).filter((f) => f.endsWith('.tmp')).should.eql([]);
    fs.writeFileSync(tmp.file('device-url'), 'http://192.168.4.2:1880\n');
    const lan = run(['5C:CF:7F:AA:00:0B', '--data', tmp.dir]);
    lan.stdout.should.containEql('#define E2EE_BACKEND_URL "http://192.168.4.2:1880"');
    lan.stderr.should.not.match(/warning/);
    fs.rmSync(tmp.file('device-url'));
  });

  it('--auth none writes the backend\'s shared key, as npm start with E2EE_AUTH=none uses it; a key version with it is refused', function () {
    const r = run(['5C:CF:7F:AA:00:0A', '--data', tmp.dir, '--auth', 'none', '--url', 'http://192.168.4.2:1880']);
    r.status.should.equal(0, r.stderr);
    r.stdout.should.containEql(`#define E2EE_KEY_HEX "${master}"`);
    r.stdout.should.containEql('#define E2EE_AUTH_HMAC 0');
    r.stdout.should.containEql('shared key');
    r.stdout.should.not.containEql(lib.deriveDeviceKey(Buffer.from(master, 'hex'), '5C:CF:7F:AA:00:0A', 0).toString('hex'));
    const versioned = run(['5C:CF:7F:AA:00:0A', '--data', tmp.dir, '--auth', 'none', '--version', '1']);
    versioned.status.should.equal(2);
    versioned.stderr.trim().split('\n').should.have.length(1);
    versioned.stderr.should.match(/--auth none has one shared key/);
    versioned.stdout.should.equal('');
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
