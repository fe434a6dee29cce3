'use strict';
require('should');
const crypto = require('node:crypto');
const CryptoJS = require('crypto-js');
const lib = require('../../dist/nodes/lib');
const vectors = require('../fixtures/vectors.json');

// The shared vectors (also read by the firmware's host tests) are checked here against
// independent implementations: crypto-js for AES-CBC, node:crypto's HKDF and HMAC.
describe('shared vectors (test/fixtures/vectors.json)', function () {
  it('base64: RFC 4648 section 10', function () {
    for (const { text, base64 } of vectors.base64) {
      Buffer.from(text).toString('base64').should.equal(base64);
      lib.decodeBase64(base64).toString().should.equal(text);
    }
  });

  for (const v of vectors.wire) {
    it(`wire: ${v.auth}, ${v.key.length * 4}-bit key, ${v.plaintext.length}-byte plaintext, deviceid "${v.deviceid}"`, function () {
      const master = Buffer.from(v.key, 'hex');
      let encKey = master;
      if (v.auth === 'hmac-sha256') {
        const enc = Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), 'esp-e2ee v1 enc', master.length));
        const mac = Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), 'esp-e2ee v1 mac', 32));
        enc.toString('hex').should.equal(v.enc_key);
        mac.toString('hex').should.equal(v.mac_key);
        encKey = enc;
        const id = Buffer.from(v.deviceid);
        const type = { reading: 0x01, register: 0x02, poll: 0x03, command: 0x81, config: 0x82 }[v.type];
        const expected = crypto.createHmac('sha256', mac).update(Buffer.concat([Buffer.from([type, id.length]), id, Buffer.from(v.iv, 'hex'), Buffer.from(v.data, 'base64')])).digest('base64');
        expected.should.equal(v.mac);
      }
      const viaCryptoJs = CryptoJS.AES.encrypt(v.plaintext, CryptoJS.enc.Hex.parse(encKey.toString('hex')), { iv: CryptoJS.enc.Hex.parse(v.iv) }).ciphertext.toString(CryptoJS.enc.Base64);
      viaCryptoJs.should.equal(v.data);
      // And the package decrypts it.
      const key = lib.parseKey('hex', v.key, v.auth);
      lib.decryptEnvelope(key, lib.parseEnvelope({ iv: Buffer.from(v.iv, 'hex').toString('base64'), data: v.data, mac: v.mac }), v.deviceid, v.type).toString().should.equal(v.plaintext);
    });
  }

  for (const v of vectors.rekey) {
    it(`rekey: X25519 and K(v+1) for device "${v.deviceid}", version ${v.kv}`, function () {
      const ds = Buffer.from(v.device_secret, 'hex');
      const ss = Buffer.from(v.server_secret, 'hex');
      lib.x25519Public(ds).toString('hex').should.equal(v.device_pub);
      lib.x25519Public(ss).toString('hex').should.equal(v.server_pub);
      lib.x25519(ss, Buffer.from(v.device_pub, 'hex')).toString('hex').should.equal(v.shared);
      lib.x25519(ds, Buffer.from(v.server_pub, 'hex')).toString('hex').should.equal(v.shared);
      // HKDF written out: salt = the old key, info = label ‖ 0 ‖ id ‖ uint32be(kv) ‖ S ‖ D.
      const kv = Buffer.alloc(4);
      kv.writeUInt32BE(v.kv);
      const info = Buffer.concat([Buffer.from('esp-e2ee v1 rekey'), Buffer.from([0]), Buffer.from(v.deviceid), kv, Buffer.from(v.server_pub, 'hex'), Buffer.from(v.device_pub, 'hex')]);
      Buffer.from(crypto.hkdfSync('sha256', Buffer.from(v.shared, 'hex'), Buffer.from(v.old_key, 'hex'), info, 16)).toString('hex').should.equal(v.new_key);
    });
  }
});
