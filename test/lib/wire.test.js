'use strict';
require('should');
const assert = require('node:assert');
const crypto = require('node:crypto');
const lib = require('../../dist/nodes/lib');

const b64 = (s) => Buffer.from(s).toString('base64');

describe('lib/wire and lib/plaintext', function () {
  describe('parseEnvelope', function () {
    const iv = crypto.randomBytes(16);
    it('reads the {iv, data, mac} object and ignores extra fields', function () {
      const env = lib.parseEnvelope({ iv: iv.toString('base64'), data: b64('x'.repeat(16)), deviceid: 'abc', mac: b64('m') });
      env.form.should.equal('keyiv');
      env.iv.equals(iv).should.be.true();
      env.mac.toString().should.equal('m');
    });
    it('reads a JSON string of the object form, and a raw body Buffer of it', function () {
      const text = JSON.stringify({ iv: iv.toString('base64'), data: b64('y'.repeat(16)) });
      lib.parseEnvelope(text).form.should.equal('keyiv');
      lib.parseEnvelope(Buffer.from(text)).iv.equals(iv).should.be.true();
      assert.throws(() => lib.parseEnvelope(Buffer.alloc(70000, 0x41)), { code: 'too-large' });
    });
    it('reads a bare ciphertext with the IV in msg.iv as base64 or Buffer', function () {
      lib.parseEnvelope(b64('z'.repeat(16)), { iv: iv.toString('base64') }).iv.equals(iv).should.be.true();
      lib.parseEnvelope(b64('z'.repeat(16)), { iv }).iv.equals(iv).should.be.true();
    });
    it('recognises the OpenSSL salted string', function () {
      const salted = Buffer.concat([Buffer.from('Salted__'), Buffer.alloc(8, 1), Buffer.alloc(16, 2)]).toString('base64');
      const env = lib.parseEnvelope(salted);
      env.form.should.equal('salted');
      env.salt.equals(Buffer.alloc(8, 1)).should.be.true();
    });
    it('rejects bad shapes with distinct, key-independent codes', function () {
      const cases = [
        [42, 'bad-payload'],
        [null, 'bad-payload'],
        [[1, 2], 'bad-payload'],
        [Buffer.from('{"iv":1,'), 'bad-payload'],
        [{ iv: iv.toString('base64') }, 'bad-payload'],
        [{ iv: iv.toString('base64'), data: 'not base64!' }, 'bad-base64'],
        [{ iv: b64('short'), data: b64('x') }, 'bad-iv'],
        [{ iv: 'a*b', data: b64('x') }, 'bad-iv'],
        [b64('no iv anywhere'), 'bad-iv'],
        ['{not json', 'bad-payload'],
      ];
      for (const [payload, code] of cases) assert.throws(() => lib.parseEnvelope(payload), { code }, JSON.stringify(payload));
    });
    it('enforces the size limit on strings and objects', function () {
      assert.throws(() => lib.parseEnvelope('A'.repeat(65537)), { code: 'too-large' });
      assert.throws(() => lib.parseEnvelope({ iv: iv.toString('base64'), data: 'A'.repeat(1000) }, { maxBytes: 100 }), { code: 'too-large' });
    });
    it('is strict about base64: whitespace and stray characters fail', function () {
      lib.isBase64('QUJD').should.be.true();
      lib.isBase64('QUJ').should.be.false();
      lib.isBase64('QU JD').should.be.false();
      lib.isBase64('QUJD\n').should.be.false();
    });
  });

  describe('plaintext', function () {
    it('strips trailing NULs', function () {
      lib.stripNul(Buffer.from('abc\0')).toString().should.equal('abc');
      lib.stripNul(Buffer.from('abc\0\0\0')).toString().should.equal('abc');
      lib.stripNul(Buffer.from('a\0c')).toString().should.equal('a\0c');
    });
    it('auto unwraps the base64 of JSON, and of JSON with a NUL', function () {
      const json = '{"data":{"t":21.5},"SEQN":7}';
      lib.formatOutput(lib.unwrapPlaintext(Buffer.from(b64(json)), 'auto'), 'auto').should.eql({ data: { t: 21.5 }, SEQN: 7 });
      lib.formatOutput(lib.unwrapPlaintext(Buffer.from(b64(json + '\0') + '\0'), 'auto'), 'auto').should.eql({ data: { t: 21.5 }, SEQN: 7 });
    });
    it('unwraps the blog firmware\'s inner base64 without its final = padding, and still refuses bad characters', function () {
      // 28 bytes of JSON end in '==', 29 bytes in '='.
      for (const text of ['{"data":{"t":21.5},"SEQN":8}', '{"data":{"t":21.5},"SEQN":80}']) {
        const padded = b64(text);
        padded.should.endWith('=');
        const bare = padded.replace(/=+$/, '');
        lib.formatOutput(lib.unwrapPlaintext(Buffer.from(bare), 'auto'), 'auto').should.eql(JSON.parse(text));
        lib.formatOutput(lib.unwrapPlaintext(Buffer.from(bare), 'base64'), 'auto').should.eql(JSON.parse(text));
        assert.throws(() => lib.unwrapPlaintext(Buffer.from(`${bare.slice(0, 4)}*${bare.slice(5)}`), 'base64'), { code: 'decrypt-failed' });
      }
      // A length of 4n + 1 is no base64 at all.
      assert.throws(() => lib.unwrapPlaintext(Buffer.from('QUJDRAQ'.slice(0, 5)), 'base64'), { code: 'decrypt-failed' });
    });
    it('auto leaves plain words that happen to be base64 alone', function () {
      lib.formatOutput(lib.unwrapPlaintext(Buffer.from('abcd'), 'auto'), 'auto').should.equal('abcd');
      lib.formatOutput(lib.unwrapPlaintext(Buffer.from('MTIz'), 'auto'), 'auto').should.equal('MTIz');
    });
    it('utf8 mode never unwraps; base64 mode always does, and fails closed', function () {
      lib.formatOutput(lib.unwrapPlaintext(Buffer.from(b64('{"a":1}')), 'utf8'), 'auto').should.equal(b64('{"a":1}'));
      lib.formatOutput(lib.unwrapPlaintext(Buffer.from(b64('hi')), 'base64'), 'string').should.equal('hi');
      assert.throws(() => lib.unwrapPlaintext(Buffer.from('%%%'), 'base64'), { code: 'decrypt-failed' });
    });
    it('output modes: string, buffer, auto', function () {
      const p = lib.unwrapPlaintext(Buffer.from('[1,2]'), 'utf8');
      lib.formatOutput(p, 'string').should.equal('[1,2]');
      Buffer.isBuffer(lib.formatOutput(p, 'buffer')).should.be.true();
      lib.formatOutput(p, 'auto').should.eql([1, 2]);
    });
    it('serialises payloads for encryption', function () {
      lib.payloadToBytes({ a: 1 }).toString().should.equal('{"a":1}');
      lib.payloadToBytes('x').toString().should.equal('x');
      lib.payloadToBytes(5).toString().should.equal('5');
      assert.throws(() => lib.payloadToBytes(undefined), { code: 'bad-plaintext' });
      lib.wrapPlaintext(Buffer.from('{"a":1}'), 'base64').toString().should.equal(b64('{"a":1}'));
    });
  });
});
