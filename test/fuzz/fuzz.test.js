'use strict';
/**
 * Property-based fuzzing (fast-check) of what faces untrusted input: the wire parser and aes-decrypt, the replay
 * window against a model, the registry actions, the nodes on a real runtime, and every HTTP endpoint of the
 * shipped flow under `npm start`. Inputs: valid messages with flipped bits, truncations, wrong types, huge and
 * unicode strings, `__proto__`/`constructor` keys, random SEQN sequences.
 *
 * Expected: no crash and no unhandled rejection; no output for invalid input; the uniform 400 on the readings
 * route; never a 500; memory that does not grow.
 *
 * FUZZ_RUNS (default 10,000) is the total number of cases, shared out between the properties; FUZZ_SEED repeats a
 * run (the seed is printed). `npm run fuzz` runs 100,000.
 */
require('should');
const fc = require('fast-check');
const crypto = require('node:crypto');
const path = require('node:path');
const lib = require('../../dist/nodes/lib');
const { tempDir } = require('../support/tmp');

const TOTAL = Number(process.env.FUZZ_RUNS || 10000);
const SEED = Number(process.env.FUZZ_SEED || 424242);
/** Each property's share of the total. */
const SHARE = { wire: 0.3, window: 0.25, registry: 0.1, nodes: 0.1, http: 0.25 };
const runs = (name) => Math.max(50, Math.floor(TOTAL * SHARE[name]));
const counts = {};
const options = (name) => ({ numRuns: runs(name), seed: SEED, endOnFailure: true });

const unhandled = [];
const onUnhandled = (err) => unhandled.push(err);

const DEVICE = '5C:CF:7F:AA:00:01';
/** The backend's master key, and the device's own key derived from it (npm start's per-device scope). */
const KEY_HEX = crypto.randomBytes(16).toString('hex');
const DEVICE_KEY_HEX = lib.deriveDeviceKey(Buffer.from(KEY_HEX, 'hex'), DEVICE).toString('hex');
const key = lib.parseKey('hex', DEVICE_KEY_HEX, 'hmac-sha256');

/** Strings that break naive code: huge, unicode (astral, RTL, NUL), prototype keys, numbers as text. */
const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', '', '\u0000', '%00', '../../etc/passwd', '\u202e', 'NaN', '-1', '1e999', '9007199254740993'),
  fc.nat({ max: 5 }).map((n) => 'A'.repeat(10 ** n)),
);
/** Any JSON-ish value, prototype keys included. */
const anyValue = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), fc.double(), fc.integer(), nasty, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 5 }),
  object: fc.dictionary(fc.oneof(nasty, fc.constantFrom('__proto__', 'constructor', 'iv', 'data', 'mac', 'SEQN')), tie('value'), { maxKeys: 5 }),
})).value;

/** A valid wire message for `seqn`, mutated by one of the ways an attacker or a bad link would. */
function validWire(seqn, device = DEVICE) {
  return lib.encryptToWire(key, Buffer.from(JSON.stringify({ data: { t: 21.5 }, SEQN: seqn })), device);
}
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip'), field: fc.constantFrom('iv', 'data', 'mac'), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('truncate'), field: fc.constantFrom('iv', 'data', 'mac'), keep: fc.nat() }),
  fc.record({ kind: fc.constant('retype'), field: fc.constantFrom('iv', 'data', 'mac'), value: anyValue }),
  fc.record({ kind: fc.constant('drop'), field: fc.constantFrom('iv', 'data', 'mac') }),
  fc.record({ kind: fc.constant('extra'), name: nasty, value: anyValue }),
  fc.record({ kind: fc.constant('replace'), value: anyValue }),
  fc.record({ kind: fc.constant('text'), cut: fc.nat() }),
);
function mutate(wire, m) {
  const w = { ...wire };
  switch (m.kind) {
    case 'flip': {
      const bytes = Buffer.from(w[m.field], 'base64');
      if (bytes.length === 0) return { value: w, changed: false };
      bytes[m.at % bytes.length] ^= 1 << m.bit;
      w[m.field] = bytes.toString('base64');
      return { value: w, changed: true };
    }
    case 'truncate': {
      const keep = m.keep % w[m.field].length;
      w[m.field] = w[m.field].slice(0, keep);
      return { value: w, changed: true };
    }
    case 'retype':
      w[m.field] = m.value;
      return { value: w, changed: true };
    case 'drop':
      delete w[m.field];
      return { value: w, changed: true };
    case 'extra':
      // An extra field alone changes nothing that is authenticated (unless it overwrites one).
      Object.defineProperty(w, m.name, { value: m.value, enumerable: true, configurable: true, writable: true });
      return { value: w, changed: ['iv', 'data', 'mac'].includes(m.name) };
    case 'replace':
      return { value: m.value, changed: true };
    case 'text': {
      const text = JSON.stringify(wire);
      return { value: text.slice(0, m.cut % text.length), changed: true };
    }
    default:
      throw new Error(m.kind);
  }
}

describe(`fuzz (fast-check, ${TOTAL} cases in all, seed ${SEED})`, function () {
  this.timeout(900000);
  before(() => process.on('unhandledRejection', onUnhandled));
  after(function () {
    process.removeListener('unhandledRejection', onUnhandled);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    console.log(`      fuzz cases run: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}; total ${total} (seed ${SEED})`);
    unhandled.should.eql([]);
  });

  it('wire parser + decrypt: a mutated message is refused with a library error, never decrypted, never a crash', function () {
    counts.wire = 0;
    fc.assert(fc.property(fc.nat({ max: 2 ** 40 }), mutation, (seqn, m) => {
      counts.wire++;
      const { value, changed } = mutate(validWire(seqn), m);
      let out;
      try {
        out = lib.decryptEnvelope(key, lib.parseEnvelope(value), DEVICE);
      } catch (err) {
        // Only the library's own, catalogued errors; and every failure after the cipher is the one code.
        (err instanceof lib.E2eeError).should.be.true(`not a library error: ${err && err.stack}`);
        return;
      }
      changed.should.be.false(`a changed message decrypted: ${JSON.stringify(m).slice(0, 200)}`);
      JSON.parse(out.toString()).SEQN.should.equal(seqn);
    }), options('wire'));
  });

  it('replay window: random SEQN sequences agree with a model (each number once, never below the window)', function () {
    counts.window = 0;
    fc.assert(fc.property(fc.constantFrom(0, 1, 7, 32, 64, 1024), fc.array(fc.oneof(fc.nat({ max: 200 }), fc.nat({ max: 2 ** 53 - 1 })), { maxLength: 60 }), (window, seqs) => {
      counts.window++;
      let state = lib.INITIAL_STATE;
      const accepted = new Set();
      let top = -1;
      for (const seq of seqs) {
        const d = lib.decide(state, seq, window);
        // The model: a number passes once, if above the highest so far, or (window > 0) inside the window below it.
        const expected = !accepted.has(seq) && (seq > top || (window > 0 && top - seq < window));
        d.accepted.should.equal(expected, `window ${window}, ${seq} after ${[...accepted].join(',')}`);
        if (d.accepted) {
          state = d.next;
          accepted.add(seq);
          top = Math.max(top, seq);
        } else {
          // Inside the window (or the top itself with none): a repeat; below it: stale, seen or not.
          d.reason.should.equal((window === 0 ? seq === top : top - seq < window) ? 'replay' : 'stale');
        }
      }
    }), options('window'));
  });

  it('registry actions: any id, body and action get a 2xx/4xx answer, never a throw; nothing pollutes prototypes', async function () {
    counts.registry = 0;
    const tmp = tempDir('esp-e2ee-fuzz-');
    const store = new lib.SqliteStore({ file: tmp.file('fuzz.sqlite') });
    await store.ready();
    const t = lib.catalogTranslator({ e2ee: require('../../nodes/shared/locales/en-US/common.json') });
    try {
      await store.register({ deviceid: DEVICE, ipaddr: '10.0.0.1', ssid: 'x' });
      await fc.assert(fc.asyncProperty(
        fc.constantFrom(...lib.REGISTRY_ACTIONS, 'nonsense', '__proto__'),
        fc.oneof(fc.constant(DEVICE), nasty, anyValue),
        anyValue,
        fc.option(anyValue),
        // How devices authenticate (none: the plain protocol), and whether the request came sealed.
        fc.option(fc.record({ acknowledged: fc.boolean(), perDevice: fc.boolean() })),
        fc.option(fc.record({ authenticated: fc.boolean(), keyver: fc.option(fc.nat({ max: 3 }), { nil: undefined }) })),
        async (action, deviceid, body, seqn, deviceAuth, sealed) => {
          counts.registry++;
          const res = await lib.runAction(store, { action, deviceid, body, heartbeatMs: 300000, seqn: seqn ?? undefined, deviceAuth: deviceAuth ?? undefined, sealed: sealed ?? undefined }, t);
          [200, 201, 202, 400, 401, 404, 409, 413].should.containEql(res.statusCode);
          if (res.statusCode >= 400) res.payload.status.should.equal('NOK');
          ({}).should.not.have.property('polluted');
          Object.keys(Object.prototype).should.eql([]);
        },
      ), options('registry'));
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });

  describe('nodes on a Node-RED runtime', function () {
    const { helper, nodes, fixtureFlow } = require('../support/red');
    before(function (done) { helper.startServer(done); });
    after(function (done) { helper.stopServer(done); });
    afterEach(() => helper.unload());

    it('aes-decrypt: invalid input gives no output (an error for a Catch node), valid input its plaintext', async function () {
      counts.nodes = 0;
      await helper.load([nodes.aesKey, nodes.aesEncrypt, nodes.aesDecrypt], fixtureFlow('aes', { key: { format: 'hex', auth: 'hmac-sha256' }, dec: { output: 'auto', plaintext: 'auto' } }), { key: { key: DEVICE_KEY_HEX } });
      const dec = helper.getNode('dec');
      const out = helper.getNode('decOut');
      await fc.assert(fc.asyncProperty(fc.nat({ max: 2 ** 40 }), mutation, async (seqn, m) => {
        counts.nodes++;
        const { value, changed } = mutate(validWire(seqn), m);
        const result = await new Promise((resolve) => {
          const timer = setTimeout(() => finish('silent'), 2000);
          function finish(r) {
            clearTimeout(timer);
            out.removeListener('input', onOut);
            dec.removeListener('call:error', onErr);
            setImmediate(() => resolve(r));
          }
          function onOut(msg) { finish({ msg }); }
          function onErr() { finish('error'); }
          out.on('input', onOut);
          dec.on('call:error', onErr);
          dec.receive({ payload: value, deviceid: DEVICE });
        });
        if (changed) result.should.equal('error');
        else result.msg.payload.SEQN.should.equal(seqn);
      }), options('nodes'));
    });

    it('replay-guard: any SEQN value and device id goes to the output the window model says, and nothing is lost', async function () {
      counts.guard = 0;
      const tmp = tempDir('esp-e2ee-fuzz-guard-');
      try {
        await helper.load([nodes.deviceStore, nodes.replayGuard, nodes.deviceRegistry], fixtureFlow('store', { store: { path: tmp.file('guard.sqlite') }, guard: { window: 8 } }));
        const guard = helper.getNode('guard');
        const outputs = [helper.getNode('accepted'), helper.getNode('rejected')];
        const pass = (msg) => new Promise((resolve) => {
          const timer = setTimeout(() => finish('silent'), 2000);
          function finish(r) {
            clearTimeout(timer);
            outputs.forEach((o, i) => o.removeListener('input', handlers[i]));
            resolve(r);
          }
          const handlers = outputs.map((o, i) => (m) => finish(i === 0 ? 'accepted' : m.rejected.reason));
          outputs.forEach((o, i) => o.on('input', handlers[i]));
          guard.receive(msg);
        });
        let device = 0;
        await fc.assert(fc.asyncProperty(fc.array(fc.oneof(fc.nat({ max: 40 }), anyValue), { maxLength: 12 }), async (seqs) => {
          counts.guard++;
          const deviceid = `dev-${device++}`; // a fresh window for each case
          const accepted = new Set();
          let top = -1;
          for (const value of seqs) {
            const parsed = lib.parseSeq(value);
            const r = await pass({ deviceid, payload: { SEQN: value } });
            if (!parsed.ok) {
              r.should.equal(parsed.reason);
              continue;
            }
            const seq = parsed.seq;
            const expected = !accepted.has(seq) && (seq > top || top - seq < 8);
            r.should.equal(expected ? 'accepted' : top - seq < 8 ? 'replay' : 'stale', `${seq} after ${[...accepted]}`);
            if (expected) {
              accepted.add(seq);
              top = Math.max(top, seq);
            }
          }
        }), { ...options('nodes'), numRuns: Math.max(50, Math.floor(runs('nodes') / 4)) });
      } finally {
        await helper.unload();
        tmp.cleanup();
      }
    });
  });

  describe('every HTTP endpoint of the shipped flow under npm start', function () {
    const { startBackend } = require('../support/backend');
    const { requestJson } = require('../../dist/sim/device');
    const fs = require('node:fs');
    let tmp;
    let backend;
    const TOKEN = crypto.randomBytes(16).toString('hex');
    before(async function () {
      tmp = tempDir('esp-e2ee-fuzz-http-');
      backend = await startBackend({ script: path.resolve(__dirname, '..', '..', 'scripts', 'start.js'), dataDir: tmp.dir, env: { E2EE_KEY: KEY_HEX, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn', E2EE_RATE_LIMIT: 'off' } });
      const { registerSealed } = require('../support/device');
      (await registerSealed(backend.url, new lib.DeviceKeyring(Buffer.from(KEY_HEX, 'hex'), 'hmac-sha256').material(DEVICE), DEVICE, { ipaddr: '10.0.0.1' })).status.should.equal(201);
    });
    after(async function () {
      if (backend) await backend.stop();
      tmp.cleanup();
    });
    const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${backend.pid}/status`, 'utf8'))[1]) / 1024;

    it('answers every request with a 2xx or 4xx JSON body, the readings route with the uniform 400; no 500, stable memory', async function () {
      counts.http = 0;
      const routes = ['', '/', '/readings', '/poll', '/commands', '/rekey', '/reset', '/readings/extra', '/%ZZ', '/..%2f..'];
      const send = (method, url, body, headers) => new Promise((resolve, reject) => {
        let answer;
        // (A connection each: a reused one can be closed by the server's keep-alive timeout as it is picked.)
        const req = require('node:http').request(url, { method, headers, agent: false }, (res) => {
          answer = { status: res.statusCode, type: res.headers['content-type'] || '', body: '' };
          res.on('data', (c) => { answer.body += c; });
          res.on('end', () => resolve(answer));
        });
        req.on('error', (err) => {
          // A server may answer before it has read the whole request (a body no route reads, one over a limit,
          // headers over Node's 16 KiB) and close the connection: the client then sees a reset after the answer,
          // or before it when the headers were too large (Node's 431).
          if (answer) resolve(answer);
          else if (err.code === 'ECONNRESET' && url.length > 16 * 1024) resolve({ status: 431, type: '', body: '' });
          else reject(err);
        });
        req.end(body);
      });
      let seqn = 1;
      const request = fc.record({
        method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
        // Every spelling Express routes alike must meet the same protections.
        spelling: fc.constantFrom('as-is', 'upper', 'mixed', 'slash'),
        id: fc.oneof(fc.constant(DEVICE), nasty.map((s) => encodeURIComponent(s).slice(0, 300))),
        route: fc.constantFrom(...routes),
        query: fc.option(fc.dictionary(fc.constantFrom('limit', 'offset', 'since', '__proto__', 'q'), nasty, { maxKeys: 3 })),
        body: fc.oneof(anyValue.map((v) => JSON.stringify(v)), mutation.map((m) => JSON.stringify(mutate(validWire(1000 + seqn++), m).value) ?? ''), nasty),
        type: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', ''),
        auth: fc.boolean(),
      });
      let baseline;
      const samples = [];
      const checkpoint = Math.max(100, Math.floor(runs('http') / 5));
      // (431: Node's own answer to a request line and headers over its 16 KiB limit, before any route.)
      const allowed = [200, 201, 202, 204, 400, 401, 404, 405, 413, 431];
      const uniform = JSON.stringify({ status: 'NOK', message: 'Rejected' });
      await fc.assert(fc.asyncProperty(request, async (r) => {
        counts.http++;
        if (counts.http === 200) baseline = rssMb();
        if (counts.http % checkpoint === 0) samples.push(rssMb());
        const spelled = ((p) => ({ 'as-is': p, upper: p.toUpperCase(), mixed: p.replace('/api/devices', '/Api/DeVices'), slash: p.endsWith('/') ? p : `${p}/` })[r.spelling])(`/api/devices/${r.id === DEVICE ? encodeURIComponent(DEVICE) : r.id}${r.route}`);
        const url = `${backend.url}${spelled}${r.query ? `?${new URLSearchParams(r.query)}` : ''}`;
        const headers = { ...(r.type ? { 'content-type': r.type } : {}), ...(r.auth ? { authorization: `Bearer ${TOKEN}` } : {}) };
        const hasBody = r.method !== 'GET' && r.method !== 'OPTIONS' && r.method !== 'HEAD';
        // (Node's client sends no Content-Length for a DELETE body unless told: the server would read it as the next request.)
        if (hasBody) headers['content-length'] = String(Buffer.byteLength(r.body));
        const res = await send(r.method, url, hasBody ? r.body : undefined, headers);
        allowed.should.containEql(res.status, `${r.method} ${url} -> ${res.status} ${res.body.slice(0, 200)}`);
        // (OPTIONS gets Express's own answer: the Allow list.)
        if (r.method !== 'OPTIONS' && r.method !== 'HEAD' && res.body) res.type.should.match(/json/, `${r.method} ${url}`);
        // A reading that is not accepted gets the one uniform answer (whatever was wrong with it).
        if (r.method === 'POST' && r.route === '/readings' && r.id !== '' && res.status === 400) res.body.should.equal(uniform);
      }), options('http'));
      // Still up, and memory did not run away (the page cache of SQLite and V8's heap settle early).
      (await requestJson(`${backend.url}/api/devices`, 'GET', undefined, { authorization: `Bearer ${TOKEN}` })).status.should.equal(200);
      const grown = rssMb() - (baseline ?? rssMb());
      console.log(`      HTTP fuzz: RSS grew ${grown.toFixed(1)} MB after the first 200 of ${counts.http} requests; every ${checkpoint}: ${samples.map((m) => m.toFixed(0)).join(', ')} MB`);
      // After warming up (V8's heap, SQLite's page cache) memory levels off: the last fifth adds little to the first.
      grown.should.be.below(150);
      (samples[samples.length - 1] - samples[0]).should.be.below(60);
      backend.output.should.not.match(/\[error\]/);
    });
  });
});
