'use strict';
require('should');
const assert = require('node:assert');
const { thrown } = require('../support/errors');
const { openssl } = require('../support/openssl');
const crypto = require('node:crypto');
const lib = require('../../dist/nodes/lib');
const vectors = require('../fixtures/vectors.json');

const hex = (h) => Buffer.from(h, 'hex');

describe('lib/crypto', function () {
  describe('NIST SP 800-38A CBC vectors', function () {
    for (const v of vectors.nist_sp800_38a_cbc) {
      it(`${v.name}: encrypts to the published ciphertext`, function () {
        const out = lib.aesCbcEncrypt(hex(v.key), hex(v.iv), hex(v.plaintext));
        // The vectors are unpadded: PKCS#7 adds one whole block after them.
        out.length.should.equal(hex(v.plaintext).length + 16);
        out.subarray(0, 64).toString('hex').should.equal(v.ciphertext);
      });
      it(`${v.name}: decrypts the published ciphertext`, function () {
        const padBlock = lib.aesCbcEncrypt(hex(v.key), hex(v.iv), hex(v.plaintext)).subarray(64);
        const plain = lib.aesCbcDecrypt(hex(v.key), hex(v.iv), Buffer.concat([hex(v.ciphertext), padBlock]));
        plain.toString('hex').should.equal(v.plaintext);
      });
    }
  });

  describe('reusable CBC decryptor (one ECB context per key)', function () {
    it('decrypts the NIST vectors', function () {
      for (const v of vectors.nist_sp800_38a_cbc) {
        const padBlock = lib.aesCbcEncrypt(hex(v.key), hex(v.iv), hex(v.plaintext)).subarray(64);
        const decrypt = lib.createCbcDecryptor(hex(v.key));
        decrypt(hex(v.iv), Buffer.concat([hex(v.ciphertext), padBlock])).toString('hex').should.equal(v.plaintext);
      }
    });
    it('agrees with a fresh OpenSSL CBC context on many messages in a row, every key size', function () {
      for (const size of [16, 24, 32]) {
        const key = crypto.randomBytes(size);
        const decrypt = lib.createCbcDecryptor(key);
        for (let len = 0; len <= 200; len++) {
          const iv = crypto.randomBytes(16);
          const plain = crypto.randomBytes(len);
          const c = crypto.createCipheriv(`aes-${size * 8}-cbc`, key, iv);
          const ct = Buffer.concat([c.update(plain), c.final()]);
          decrypt(iv, ct).equals(plain).should.be.true();
        }
      }
    });
    it('stays usable after rejecting bad padding and bad lengths', function () {
      const key = crypto.randomBytes(16);
      const decrypt = lib.createCbcDecryptor(key);
      const iv = crypto.randomBytes(16);
      assert.throws(() => decrypt(iv, crypto.randomBytes(17)), { code: 'decrypt-failed' });
      let rejected = 0;
      for (let i = 0; i < 50; i++) {
        try { decrypt(iv, crypto.randomBytes(32)); } catch (err) { err.code.should.equal('decrypt-failed'); rejected++; }
      }
      rejected.should.be.above(40);
      const ct = lib.aesCbcEncrypt(key, iv, Buffer.from('still works'));
      decrypt(iv, ct).toString().should.equal('still works');
    });
  });

  describe('PKCS#7', function () {
    it('pads block-aligned input with a whole block of 16s', function () {
      for (const len of [0, 16, 32, 64]) {
        const padded = lib.pkcs7Pad(Buffer.alloc(len, 0x41));
        padded.length.should.equal(len + 16);
        padded.subarray(len).equals(Buffer.alloc(16, 16)).should.be.true();
      }
    });
    it('pads 1..15 bytes short of a block with that many bytes of that value', function () {
      for (let r = 1; r < 16; r++) {
        const padded = lib.pkcs7Pad(Buffer.alloc(16 + 16 - r, 1));
        padded.length.should.equal(32);
        padded.subarray(32 - r).equals(Buffer.alloc(r, r)).should.be.true();
      }
    });
    it('round-trips every length 0..48', function () {
      for (let len = 0; len <= 48; len++) {
        const data = crypto.randomBytes(len);
        lib.pkcs7Unpad(lib.pkcs7Pad(data)).equals(data).should.be.true();
      }
    });
    it('rejects a pad byte of 0', function () {
      const block = Buffer.alloc(16, 7);
      block[15] = 0;
      assert.throws(() => lib.pkcs7Unpad(block), { code: 'decrypt-failed' });
    });
    it('rejects a pad byte over 16', function () {
      for (const n of [17, 32, 255]) {
        assert.throws(() => lib.pkcs7Unpad(Buffer.alloc(16, n)), { code: 'decrypt-failed' });
      }
    });
    it('rejects inconsistent pad bytes, wherever the odd byte sits', function () {
      for (let n = 2; n <= 16; n++) {
        for (let pos = 16 - n; pos < 15; pos++) {
          const block = Buffer.alloc(32, 0x41);
          block.fill(n, 32 - n);
          block[16 + pos] = n ^ 0x01;
          assert.throws(() => lib.pkcs7Unpad(block), { code: 'decrypt-failed' }, `n=${n} pos=${pos}`);
        }
      }
    });
    it('rejects empty and non-block-aligned input', function () {
      assert.throws(() => lib.pkcs7Unpad(Buffer.alloc(0)), { code: 'decrypt-failed' });
      assert.throws(() => lib.pkcs7Unpad(Buffer.alloc(15, 1)), { code: 'decrypt-failed' });
    });
    it('aesCbcDecrypt rejects a ciphertext whose decrypted padding is wrong', function () {
      const key = crypto.randomBytes(16);
      const iv = crypto.randomBytes(16);
      // Encrypt a raw block ending in 0x00 without padding: its "pad byte" is 0.
      const c = crypto.createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false);
      const raw = Buffer.concat([c.update(Buffer.alloc(16, 0)), c.final()]);
      assert.throws(() => lib.aesCbcDecrypt(key, iv, raw), { code: 'decrypt-failed' });
    });
  });

  describe('EVP_BytesToKey against the openssl CLI', function () {
    const passphrases = ['secret', 'a longer passphrase with spaces', 'ünïcødé €'];
    it('derives the key and IV that `openssl enc -P` prints', function () {
      for (const pass of passphrases) {
        const salt = crypto.randomBytes(8);
        const out = openssl(['enc', '-aes-256-cbc', '-md', 'md5', '-pass', `pass:${pass}`, '-S', salt.toString('hex'), '-P']);
        const key = /key\s*=\s*([0-9A-F]+)/i.exec(out)[1].toLowerCase();
        const iv = /iv\s*=\s*([0-9A-F]+)/i.exec(out)[1].toLowerCase();
        const derived = lib.evpBytesToKey(Buffer.from(pass, 'utf8'), salt);
        derived.key.toString('hex').should.equal(key);
        derived.iv.toString('hex').should.equal(iv);
      }
    });
    it('decrypts what `openssl enc -aes-256-cbc -md md5 -a` encrypts', function () {
      for (const pass of passphrases) {
        const text = `reading ${crypto.randomBytes(20).toString('hex')}`;
        const b64 = openssl(['enc', '-aes-256-cbc', '-md', 'md5', '-a', '-A', '-pass', `pass:${pass}`], text).trim();
        const key = lib.parseKey('passphrase', pass);
        const plain = lib.decryptEnvelope(key, lib.parseEnvelope(b64));
        plain.toString('utf8').should.equal(text);
      }
    });
    it('encrypts what `openssl enc -d` decrypts', function () {
      for (const pass of passphrases) {
        const text = `command ${crypto.randomBytes(20).toString('hex')}`;
        const salted = lib.encryptToWire(lib.parseKey('passphrase', pass), Buffer.from(text));
        salted.should.be.a.String();
        const out = openssl(['enc', '-d', '-aes-256-cbc', '-md', 'md5', '-a', '-A', '-pass', `pass:${pass}`], salted);
        out.should.equal(text);
      }
    });
  });

  describe('authenticated mode', function () {
    it('derives encryption and MAC keys with HKDF-SHA256 and the documented labels', function () {
      const master = crypto.randomBytes(16);
      const { encKey, macKey } = lib.deriveAuthKeys(master);
      encKey.length.should.equal(16);
      macKey.length.should.equal(32);
      encKey.equals(Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), 'esp-e2ee v1 enc', 16))).should.be.true();
      macKey.equals(Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), 'esp-e2ee v1 mac', 32))).should.be.true();
      encKey.equals(master).should.be.false();
    });
    it('MACs type ‖ len(deviceid) ‖ deviceid ‖ iv ‖ ciphertext', function () {
      const macKey = crypto.randomBytes(32);
      const iv = crypto.randomBytes(16);
      const ct = crypto.randomBytes(32);
      const expected = crypto.createHmac('sha256', macKey).update(Buffer.concat([Buffer.from([0x82, 17]), Buffer.from('5C:CF:7F:01:02:03'), iv, ct])).digest();
      lib.computeMac(macKey, 0x82, '5C:CF:7F:01:02:03', iv, ct).equals(expected).should.be.true();
      lib.MESSAGE_TYPES.should.eql({ reading: 0x01, register: 0x02, poll: 0x03, command: 0x81, config: 0x82 });
    });
    it('binds the type and direction: a message verifies only as the type it was sealed as', function () {
      const key = lib.parseKey('hex', crypto.randomBytes(16).toString('hex'), 'hmac-sha256');
      for (const sealedAs of lib.MESSAGE_TYPE_NAMES) {
        const wire = lib.encryptToWire(key, Buffer.from('{"SEQN":1}'), 'dev-a', { type: sealedAs });
        for (const openedAs of lib.MESSAGE_TYPE_NAMES) {
          if (openedAs === sealedAs) lib.decryptEnvelope(key, lib.parseEnvelope(wire), 'dev-a', openedAs).toString().should.equal('{"SEQN":1}');
          else assert.throws(() => lib.decryptEnvelope(key, lib.parseEnvelope(wire), 'dev-a', openedAs), { code: 'decrypt-failed' }, `${sealedAs} as ${openedAs}`);
        }
      }
    });
    it('sealedLength is the exact length of the sealed JSON text', function () {
      const key = lib.parseKey('hex', crypto.randomBytes(16).toString('hex'), 'hmac-sha256');
      for (const n of [0, 1, 15, 16, 17, 100, 1000]) {
        for (const kv of [undefined, 0, 7, 4294967295]) {
          JSON.stringify(lib.encryptToWire(key, Buffer.alloc(n, 0x61), 'd', { kv })).length.should.equal(lib.sealedLength(n, kv), `${n} bytes, kv ${kv}`);
        }
      }
    });
    it('binds the device id: a message for one device does not verify for another', function () {
      const key = lib.parseKey('hex', crypto.randomBytes(16).toString('hex'), 'hmac-sha256');
      const wire = lib.encryptToWire(key, Buffer.from('{"SEQN":1}'), 'dev-a');
      lib.decryptEnvelope(key, lib.parseEnvelope(wire), 'dev-a').toString().should.equal('{"SEQN":1}');
      assert.throws(() => lib.decryptEnvelope(key, lib.parseEnvelope(wire), 'dev-b'), { code: 'decrypt-failed' });
      assert.throws(() => lib.decryptEnvelope(key, lib.parseEnvelope(wire), ''), { code: 'decrypt-failed' });
    });
    it('rejects a flipped bit in iv, data or mac, and a missing mac, with the same error', function () {
      const key = lib.parseKey('hex', crypto.randomBytes(32).toString('hex'), 'hmac-sha256');
      const wire = lib.encryptToWire(key, Buffer.from('hello world, this is a reading'), 'd1');
      for (const field of ['iv', 'data', 'mac']) {
        const bytes = Buffer.from(wire[field], 'base64');
        bytes[bytes.length - 1] ^= 1;
        const tampered = { ...wire, [field]: bytes.toString('base64') };
        assert.throws(() => lib.decryptEnvelope(key, lib.parseEnvelope(tampered), 'd1'), { code: 'decrypt-failed' }, field);
      }
      const { mac, ...noMac } = wire;
      assert.throws(() => lib.decryptEnvelope(key, lib.parseEnvelope(noMac), 'd1'), { code: 'decrypt-failed' });
    });
  });

  describe('keys', function () {
    it('accepts 16, 24 and 32 byte keys in hex and base64', function () {
      for (const n of [16, 24, 32]) {
        const raw = crypto.randomBytes(n);
        lib.parseKey('hex', raw.toString('hex')).encKey.equals(raw).should.be.true();
        lib.parseKey('base64', raw.toString('base64')).encKey.equals(raw).should.be.true();
      }
    });
    it('rejects other sizes, bad encodings and passphrase+hmac without echoing the key', function () {
      const cases = [['hex', 'abcd'], ['hex', 'zz'.repeat(16)], ['base64', '!!!!'], ['hex', '00'.repeat(20)]];
      for (const [format, secret] of cases) {
        const err = thrown(() => lib.parseKey(format, secret));
        err.code.should.equal('bad-key');
        err.message.should.not.containEql(secret);
      }
      assert.throws(() => lib.parseKey('passphrase', 'x', 'hmac-sha256'), { code: 'passphrase-auth' });
      assert.throws(() => lib.parseKey('hex', ''), { code: 'no-key' });
      assert.throws(() => lib.parseKey('rot13', 'abc'), { code: 'bad-key-format' });
    });
  });
});
