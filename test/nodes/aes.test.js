'use strict';
require('should');
const crypto = require('node:crypto');
const CryptoJS = require('crypto-js');
const { helper, nodes, fixtureFlow, exchange, expectRejected, redVersion, catalogText } = require('../support/red');
const { openssl } = require('../support/openssl');

const allNodes = [nodes.aesKey, nodes.aesEncrypt, nodes.aesDecrypt];
const wa = (buf) => CryptoJS.enc.Hex.parse(buf.toString('hex'));

/** Random printable text of exactly `len` bytes (ASCII, so bytes = chars). */
function randomText(len) {
  const bytes = crypto.randomBytes(len);
  return Array.from(bytes, (b) => String.fromCharCode(32 + (b % 95))).join('');
}

async function load(keyProps, credentials, overrides = {}) {
  await helper.load(allNodes, fixtureFlow('aes', { key: keyProps, ...overrides }), { key: credentials });
}

describe('aes nodes on Node-RED ' + redVersion(), function () {
  this.timeout(20000);
  before(function (done) { helper.startServer(done); });
  after(function (done) { helper.stopServer(done); });
  afterEach(() => helper.unload());

  describe('aes-decrypt against crypto-js ciphertexts', function () {
    for (const size of [16, 24, 32]) {
      it(`AES-${size * 8}: {iv, data} and bare string + msg.iv, 0..300 bytes`, async function () {
        const key = crypto.randomBytes(size);
        await load({ format: 'hex' }, { key: key.toString('hex') }, { dec: { output: 'string', plaintext: 'utf8' } });
        for (let len = 0; len <= 300; len++) {
          const text = randomText(len);
          const iv = crypto.randomBytes(16);
          const ct = CryptoJS.AES.encrypt(text, wa(key), { iv: wa(iv) }).ciphertext.toString(CryptoJS.enc.Base64);
          const a = await exchange('dec', 'decOut', { payload: { iv: iv.toString('base64'), data: ct, deviceid: 'x' } });
          a.should.have.property('msg');
          a.msg.payload.should.equal(text);
          const c = await exchange('dec', 'decOut', { payload: ct, iv: len % 2 ? iv : iv.toString('base64') });
          c.msg.payload.should.equal(text);
        }
      });
    }

    it('base64 key format', async function () {
      const key = crypto.randomBytes(16);
      await load({ format: 'base64' }, { key: key.toString('base64') });
      const iv = crypto.randomBytes(16);
      const ct = CryptoJS.AES.encrypt('{"SEQN":3}', wa(key), { iv: wa(iv) }).ciphertext.toString(CryptoJS.enc.Base64);
      const r = await exchange('dec', 'decOut', { payload: { iv: iv.toString('base64'), data: ct } });
      r.msg.payload.should.eql({ SEQN: 3 });
    });

    it('passphrase mode: the OpenSSL salted string, 0..300 bytes', async function () {
      await load({ format: 'passphrase' }, { key: 'correct horse battery staple' }, { dec: { output: 'string', plaintext: 'utf8' } });
      for (let len = 0; len <= 300; len += 3) {
        const text = randomText(len);
        const salted = CryptoJS.AES.encrypt(text, 'correct horse battery staple').toString();
        const r = await exchange('dec', 'decOut', { payload: salted });
        r.msg.payload.should.equal(text);
      }
    });

    it('the blog firmware: base64 of JSON inside, auto-unwrapped, with a trailing NUL', async function () {
      const key = crypto.randomBytes(16);
      await load({ format: 'hex' }, { key: key.toString('hex') });
      const json = JSON.stringify({ data: { temp: 22.5, hum: 40 }, SEQN: 12 });
      const iv = crypto.randomBytes(16);
      const wrapped = Buffer.from(json).toString('base64');
      for (const inner of [wrapped, wrapped + '\0', json + '\0']) {
        const ct = CryptoJS.AES.encrypt(inner, wa(key), { iv: wa(iv) }).ciphertext.toString(CryptoJS.enc.Base64);
        const r = await exchange('dec', 'decOut', { payload: { iv: iv.toString('base64'), data: ct } });
        r.msg.payload.should.eql({ data: { temp: 22.5, hum: 40 }, SEQN: 12 });
      }
    });

    it('output buffer gives the raw bytes', async function () {
      const key = crypto.randomBytes(16);
      await load({ format: 'hex' }, { key: key.toString('hex') }, { dec: { output: 'buffer', plaintext: 'utf8' } });
      const iv = crypto.randomBytes(16);
      const ct = CryptoJS.AES.encrypt('{"a":1}', wa(key), { iv: wa(iv) }).ciphertext.toString(CryptoJS.enc.Base64);
      const r = await exchange('dec', 'decOut', { payload: { iv: iv.toString('base64'), data: ct } });
      Buffer.isBuffer(r.msg.payload).should.be.true();
      r.msg.payload.toString().should.equal('{"a":1}');
    });
  });

  describe('aes-encrypt output read by crypto-js and the openssl CLI', function () {
    for (const size of [16, 24, 32]) {
      it(`AES-${size * 8} {iv, data}`, async function () {
        const key = crypto.randomBytes(size);
        await load({ format: 'hex' }, { key: key.toString('hex') });
        for (const len of [0, 1, 15, 16, 17, 31, 32, 100, 300]) {
          const text = randomText(len);
          const r = await exchange('enc', 'encOut', { payload: text });
          const { iv, data } = r.msg.payload;
          Object.keys(r.msg.payload).should.eql(['iv', 'data']);
          const viaCryptoJs = CryptoJS.AES.decrypt({ ciphertext: CryptoJS.enc.Base64.parse(data) }, wa(key), { iv: CryptoJS.enc.Base64.parse(iv) });
          viaCryptoJs.toString(CryptoJS.enc.Utf8).should.equal(text);
          const viaOpenssl = openssl(['enc', '-d', `-aes-${size * 8}-cbc`, '-K', key.toString('hex'), '-iv', Buffer.from(iv, 'base64').toString('hex'), '-a', '-A'], data);
          viaOpenssl.should.equal(text);
        }
      });
    }

    it('passphrase: the salted string', async function () {
      await load({ format: 'passphrase' }, { key: 'p@ss phrase' });
      const r = await exchange('enc', 'encOut', { payload: { cmd: 'led', on: true } });
      r.msg.payload.should.be.a.String();
      Buffer.from(r.msg.payload, 'base64').subarray(0, 8).toString().should.equal('Salted__');
      CryptoJS.AES.decrypt(r.msg.payload, 'p@ss phrase').toString(CryptoJS.enc.Utf8).should.equal('{"cmd":"led","on":true}');
      openssl(['enc', '-d', '-aes-256-cbc', '-md', 'md5', '-a', '-A', '-pass', 'pass:p@ss phrase'], r.msg.payload).should.equal('{"cmd":"led","on":true}');
    });

    it('random IVs differ per message; a fixed IV is used as configured and warned about', async function () {
      const key = crypto.randomBytes(16);
      await load({ format: 'hex' }, { key: key.toString('hex') });
      const a = await exchange('enc', 'encOut', { payload: 'same' });
      const b = await exchange('enc', 'encOut', { payload: 'same' });
      a.msg.payload.iv.should.not.equal(b.msg.payload.iv);
      a.msg.payload.data.should.not.equal(b.msg.payload.data);
      helper.unload();
      const fixed = '000102030405060708090a0b0c0d0e0f';
      const flow = fixtureFlow('aes', { enc: { iv: fixed } });
      await helper.load(allNodes, flow, { key: { key: key.toString('hex') } });
      const enc = helper.getNode('enc');
      // The warning is given at construction; the spy records it.
      enc.warn.should.be.calledOnce();
      catalogText(enc.warn.firstCall.args[0]).should.match(/insecure/);
      const c = await exchange('enc', 'encOut', { payload: 'same' });
      c.msg.payload.iv.should.equal(Buffer.from(fixed, 'hex').toString('base64'));
    });

    it('plaintext base64 wraps the JSON the way the blog firmware does', async function () {
      const key = crypto.randomBytes(16);
      await load({ format: 'hex' }, { key: key.toString('hex') }, { enc: { plaintext: 'base64' } });
      const r = await exchange('enc', 'encOut', { payload: { SEQN: 1 } });
      const inner = CryptoJS.AES.decrypt({ ciphertext: CryptoJS.enc.Base64.parse(r.msg.payload.data) }, wa(key), { iv: CryptoJS.enc.Base64.parse(r.msg.payload.iv) }).toString(CryptoJS.enc.Utf8);
      Buffer.from(inner, 'base64').toString().should.equal('{"SEQN":1}');
    });
  });

  describe('round trips', function () {
    for (const auth of ['none', 'hmac-sha256']) {
      for (const size of [16, 24, 32]) {
        it(`auth ${auth}, AES-${size * 8}, with and without deviceid`, async function () {
          await load({ format: 'hex', auth }, { key: crypto.randomBytes(size).toString('hex') });
          for (const deviceid of [undefined, '5C:CF:7F:AA:BB:CC']) {
            const payload = { data: { a0: 512, heap: 30000 }, SEQN: 99 };
            const r = await exchange('enc', 'decOut', { payload, deviceid });
            r.msg.payload.should.eql(payload);
          }
          const e = await exchange('enc', 'encOut', { payload: 'x', deviceid: 'd' });
          if (auth === 'none') e.msg.payload.should.not.have.property('mac');
          else Buffer.from(e.msg.payload.mac, 'base64').length.should.equal(32);
        });
      }
    }
    it('auth hmac-sha256 with plaintext base64 into auto', async function () {
      await load({ format: 'base64', auth: 'hmac-sha256' }, { key: crypto.randomBytes(32).toString('base64') }, { enc: { plaintext: 'base64' } });
      const r = await exchange('enc', 'decOut', { payload: { SEQN: 5 }, deviceid: 'dev' });
      r.msg.payload.should.eql({ SEQN: 5 });
    });
  });

  describe('per-device scope: the key is a master, each device has its own', function () {
    const lib = require('../../dist/nodes/lib');
    const master = crypto.randomBytes(16);
    for (const auth of ['none', 'hmac-sha256']) {
      it(`auth ${auth}: decrypts what the device encrypted with its own key, for that device only`, async function () {
        await load({ format: 'hex', auth, scope: 'per-device' }, { key: master.toString('hex') });
        const A = '5C:CF:7F:AA:00:01';
        const deviceKey = lib.byteKeyMaterial(lib.deriveDeviceKey(master, A, 0), auth);
        const wire = lib.encryptToWire(deviceKey, Buffer.from(JSON.stringify({ SEQN: 3 })), A);
        (await exchange('dec', 'decOut', { payload: wire, deviceid: A })).msg.payload.should.eql({ SEQN: 3 });
        if (auth === 'hmac-sha256') {
          // A's message posted as B, and one under another key version, are refused.
          (await expectRejected('dec', 'decOut', { payload: wire, deviceid: '5C:CF:7F:AA:00:02' })).should.equal('Decryption failed');
          (await expectRejected('dec', 'decOut', { payload: wire, deviceid: A, keyVersion: 1 })).should.equal('Decryption failed');
        }
        // The master itself is no device's key.
        const underMaster = lib.encryptToWire(lib.parseKey('hex', master.toString('hex'), auth), Buffer.from('{"SEQN":4}'), A);
        const r = await exchange('dec', 'decOut', { payload: underMaster, deviceid: A });
        (r.error !== undefined || JSON.stringify(r.msg.payload) !== '{"SEQN":4}').should.be.true();
        // The node's own encryption for A is what A's key decrypts (last: the fixture also feeds it to dec).
        const out = (await exchange('enc', 'encOut', { payload: { cmd: 1 }, deviceid: A })).msg.payload;
        JSON.parse(lib.decryptEnvelope(deviceKey, lib.parseEnvelope(out), A).toString()).should.eql({ cmd: 1 });
      });
    }
    it('a message without a device id is refused; a passphrase cannot be a master', async function () {
      await load({ format: 'hex', auth: 'hmac-sha256', scope: 'per-device' }, { key: master.toString('hex') });
      (await expectRejected('dec', 'decOut', { payload: { iv: 'AAAAAAAAAAAAAAAAAAAAAA==', data: 'AAAAAAAAAAAAAAAAAAAAAA==', mac: 'AA==' } })).should.match(/needs msg\.deviceid/);
      (await expectRejected('enc', 'encOut', { payload: 'x' })).should.match(/needs msg\.deviceid/);
      await helper.unload();
      await load({ format: 'passphrase', auth: 'none', scope: 'per-device' }, { key: 'secret words' });
      (await expectRejected('dec', 'decOut', { payload: 'U2FsdGVkX1+AAAAAAAAAAA==', deviceid: 'x' })).should.match(/needs a hex or base64 master key/);
    });
  });

  describe('bad input: nothing out, one clear error, no secrets', function () {
    const keyHex = crypto.randomBytes(16).toString('hex');
    async function loadMac() {
      await load({ format: 'hex', auth: 'hmac-sha256' }, { key: keyHex });
    }
    /** A valid ciphertext from aes-encrypt; waits for its decrypted copy too, so it cannot leak into the next check. */
    async function good(deviceid = 'dev1') {
      const decrypted = new Promise((resolve) => helper.getNode('decOut').once('input', resolve));
      const r = await exchange('enc', 'encOut', { payload: { SEQN: 1, data: { t: 'x'.repeat(40) } }, deviceid });
      await decrypted;
      return r.msg.payload;
    }
    function flip(b64, index) {
      const bytes = Buffer.from(b64, 'base64');
      bytes[index < 0 ? bytes.length + index : index] ^= 0x01;
      return bytes.toString('base64');
    }

    it('crypto failures all give the same text, which names no key or padding', async function () {
      await load({ format: 'hex', auth: 'none' }, { key: keyHex });
      const w = await good();
      const otherKey = crypto.randomBytes(16);
      const iv = crypto.randomBytes(16);
      const wrongKeyCt = CryptoJS.AES.encrypt('{"SEQN":1}', wa(otherKey), { iv: wa(iv) }).ciphertext.toString(CryptoJS.enc.Base64);
      const cases = {
        'wrong key': { iv: iv.toString('base64'), data: wrongKeyCt },
        // (A bit flipped in the block before the last flips the same bit of the padding: always invalid. Flipping a bit of
        // the last block itself garbles it, and its last byte then passes as padding about once in 256 runs.)
        'tampered last block': { ...w, data: flip(w.data, -17) },
        'last block cut off': { ...w, data: Buffer.from(w.data, 'base64').subarray(0, -16).toString('base64') },
        'truncated mid-block': { ...w, data: Buffer.from(w.data, 'base64').subarray(0, 40).toString('base64') },
        'empty ciphertext': { ...w, data: '' },
      };
      const texts = new Set();
      for (const [name, payload] of Object.entries(cases)) {
        const text = await expectRejected('dec', 'decOut', { payload });
        texts.add(text);
        text.should.not.containEql(keyHex, name);
        text.should.not.match(/pad|mac|bad decrypt/i, name);
      }
      [...texts].should.eql(['Decryption failed']);
      helper.getNode('dec').status.lastCall.args[0].should.have.property('fill', 'red');
    });

    it('authenticated mode: a wrong, missing or foreign MAC gives the same text', async function () {
      await loadMac();
      const w = await good('dev1');
      const cases = [
        { ...w, mac: flip(w.mac, 0) },
        { iv: w.iv, data: w.data },
        { ...w, mac: Buffer.alloc(5).toString('base64') },
        { ...w, iv: flip(w.iv, 3) },
        { ...w, data: flip(w.data, 0) },
        // Cutting off the first block leaves valid CBC padding, so only the MAC can catch it.
        { ...w, data: Buffer.from(w.data, 'base64').subarray(16).toString('base64') },
      ];
      for (const payload of cases) (await expectRejected('dec', 'decOut', { payload, deviceid: 'dev1' })).should.equal('Decryption failed');
      // Valid MAC, but for another device.
      (await expectRejected('dec', 'decOut', { payload: w, deviceid: 'dev2' })).should.equal('Decryption failed');
      // And the valid one still passes, so the rejections above were not a broken key.
      (await exchange('dec', 'decOut', { payload: w, deviceid: 'dev1' })).msg.payload.SEQN.should.equal(1);
    });

    it('malformed payloads get texts that say what is wrong', async function () {
      await load({ format: 'hex' }, { key: keyHex }, { dec: { maxBytes: 1024 } });
      const w = await good();
      const cases = [
        [{ payload: 42 }, /object \{iv, data/],
        [{ payload: true }, /object \{iv, data/],
        [{ payload: null }, /object \{iv, data/],
        [{}, /object \{iv, data/],
        [{ payload: { ...w, data: 'not*base64' } }, /not valid base64/],
        [{ payload: { ...w, iv: Buffer.alloc(8).toString('base64') } }, /IV missing or not 16 bytes/],
        [{ payload: w.data }, /IV missing or not 16 bytes/],
        [{ payload: { ...w, data: 'A'.repeat(2000) } }, /size limit/],
        [{ payload: 'QUJD'.repeat(300) }, /size limit/],
      ];
      for (const [msg, re] of cases) (await expectRejected('dec', 'decOut', msg)).should.match(re);
    });

    it('a salted string for a byte key, or {iv,data} for a passphrase, is a configuration mismatch', async function () {
      await load({ format: 'hex' }, { key: keyHex });
      (await expectRejected('dec', 'decOut', { payload: CryptoJS.AES.encrypt('x', 'pw').toString() })).should.match(/does not match the key type/);
    });

    it('an invalid or missing key is reported per message without echoing it, and the runtime keeps running', async function () {
      const badKey = 'abcdef0123';
      await load({ format: 'hex' }, { key: badKey });
      catalogText(helper.getNode('key').warn.firstCall.args[0]).should.match(/16, 24 or 32 bytes/);
      const texts = [await expectRejected('enc', 'encOut', { payload: 'x' }), await expectRejected('dec', 'decOut', { payload: { iv: 'AAAAAAAAAAAAAAAAAAAAAA==', data: 'AAAAAAAAAAAAAAAAAAAAAA==' } })];
      for (const t of texts) {
        t.should.match(/16, 24 or 32 bytes/);
        t.should.not.containEql(badKey);
      }
      helper.unload();
      await helper.load(allNodes, fixtureFlow('aes', { enc: { key: '' }, dec: { key: 'missing' } }), {});
      (await expectRejected('enc', 'encOut', { payload: 'x' })).should.match(/No AES key/);
      (await expectRejected('dec', 'decOut', { payload: 'x' })).should.match(/No AES key/);
    });

    it('never logs the key: every log, warn and error call over a bad-input run', async function () {
      await loadMac();
      const w = await good();
      const texts = [];
      for (const id of ['key', 'enc', 'dec']) {
        const n = helper.getNode(id);
        for (const method of ['log', 'warn', 'error', 'debug', 'trace', 'status']) {
          n.on(`call:${method}`, (call) => texts.push(JSON.stringify(call.args, (k, v) => (v instanceof Error ? v.message : v))));
        }
      }
      await expectRejected('dec', 'decOut', { payload: { ...w, mac: flip(w.mac, 1) } });
      await expectRejected('dec', 'decOut', { payload: 17 });
      await exchange('enc', 'decOut', { payload: 'ok' });
      texts.length.should.be.above(1);
      const keyB64 = Buffer.from(keyHex, 'hex').toString('base64');
      for (const t of texts) {
        t.should.not.containEql(keyHex);
        t.should.not.containEql(keyB64);
      }
    });

    it('encrypt rejects a payload with nothing to encrypt', async function () {
      await load({ format: 'hex' }, { key: keyHex });
      (await expectRejected('enc', 'encOut', {})).should.match(/nothing to encrypt/);
    });
  });
});
