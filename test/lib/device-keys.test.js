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
