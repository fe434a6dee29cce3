'use strict';
/**
 * The HTTP edge of `npm start` against an attacker without any key (issue: security round 2): every spelling of an
 * API path gets the same protections as the lower-case one (rate limits, bounded bodies, JSON errors, the hidden
 * token), no body is read whole on any route in any content type, a HEAD is never a poll, no answer is JSONP, and
 * a log line a request causes stays one line.
 */
require('should');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { startBackend } = require('../support/backend');
const { tempDir } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { requestJson } = require('../../dist/sim/device');
const { registerSealed, sealed } = require('../support/device');

const root = path.resolve(__dirname, '..', '..');
const MIB = 1024 * 1024;

/** The spellings Express's router takes for one path: as written, upper case, mixed case, a trailing slash. */
function spellings(p) {
  return [p, p.toUpperCase(), p.replace(/^\/api\/devices/, '/Api/Devices'), `${p}/`];
}

/** VmRSS of a process, in bytes. */
function rss(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

/**
 * Sends up to `size` bytes as fast as the server reads them and resolves with its answer's status, or with 'closed'
 * when the server closed the connection first. Never sends more once the server answered or closed.
 */
function flood(url, method, type, size) {
  return new Promise((resolve) => {
    const headers = { 'transfer-encoding': 'chunked', ...(type ? { 'content-type': type } : {}) };
    const req = http.request(url, { method, headers });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    let settled = false;
    const settle = (v) => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve(v);
    };
    req.on('response', (res) => {
      res.resume();
      settle(res.statusCode);
    });
    req.on('error', () => settle('closed'));
    const pump = () => {
      while (!settled && sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) return req.once('drain', pump);
      }
      if (!settled) req.end();
    };
    pump();
    setTimeout(() => settle('timeout'), 30000).unref();
  });
}

describe('the HTTP edge of npm start: path spellings, bounded bodies, HEAD, JSONP, log lines', function () {
  this.timeout(180000);
  let tmp;
  let backend;
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
  const MAC = '5C:CF:7F:EE:00:01';
  const id = encodeURIComponent(MAC);
  before(async function () {
    tmp = tempDir('esp-e2ee-edge-');
    // The Node-RED process itself (not npm), so that its memory can be read.
    backend = await startBackend({ dataDir: tmp.dir, script: path.join(root, 'scripts', 'start.js'), env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_REJECTION_LOG_INTERVAL: '1' } });
    (await registerSealed(backend.url, ring.material(MAC), MAC, { ipaddr: '192.0.2.9' })).status.should.equal(201);
  });
  after(async function () {
    if (backend) await backend.stop();
    tmp.cleanup();
  });

  it('200 MiB bodies of every content type on every route in every spelling, four at once: each cut off, memory grows < 50 MB, the device is still served', async function () {
    // Garbage for another id (the rate limits of an id are another finding's).
    const target = encodeURIComponent('5C:CF:7F:EE:00:09');
    const routes = [
      ['POST', `/api/devices/${target}`], ['PUT', `/api/devices/${target}`], ['DELETE', `/api/devices/${target}`], ['POST', `/api/devices/${target}/readings`],
      ['POST', `/api/devices/${target}/poll`], ['POST', `/api/devices/${target}/commands`], ['POST', `/api/devices/${target}/rekey`], ['POST', `/api/devices/${target}/reset`],
    ];
    const types = ['text/plain', 'application/octet-stream', undefined];
    const cases = [];
    for (const [method, p] of routes) for (const spelled of spellings(p)) for (const type of types) cases.push({ method, url: `${backend.url}${spelled}`, type });
    // One small body per route and spelling first, so that what the runtime sets up on first use (compiled code,
    // route caches) is not counted as the floods' memory.
    for (const c of cases.filter((_, i) => i % 3 === 0)) await flood(c.url, c.method, c.type, 256 * 1024);
    const base = rss(backend.pid);
    let peak = base;
    const sampler = setInterval(() => { peak = Math.max(peak, rss(backend.pid)); }, 50);
    const outcomes = [];
    try {
      for (let i = 0; i < cases.length; i += 4) {
        outcomes.push(...(await Promise.all(cases.slice(i, i + 4).map((c) => flood(c.url, c.method, c.type, 200 * MIB)))));
      }
    } finally {
      clearInterval(sampler);
    }
    // Every one was answered 413 (or, past the discard limit, its connection closed), or refused by the rate limit
    // before its body was read: none was read whole.
    const summary = `outcomes ${JSON.stringify(outcomes)}; RSS ${(base / 1e6).toFixed(0)} MB, peak ${(peak / 1e6).toFixed(0)} MB`;
    console.log(`      ${cases.length} floods: RSS ${(base / 1e6).toFixed(0)} MB before, peak ${(peak / 1e6).toFixed(0)} MB, ${outcomes.filter((o) => o === 413).length} answered 413, ${outcomes.filter((o) => o === 429).length} 429, ${outcomes.filter((o) => o === 'closed').length} closed`);
    outcomes.filter((o) => o !== 413 && o !== 429 && o !== 'closed').should.eql([], summary);
    outcomes.filter((o) => o === 413).length.should.be.above(cases.length / 2, summary);
    (peak - base).should.be.below(50 * 1000 * 1000, summary);
    const reading = sealed(ring.material(MAC), MAC, 'reading', { data: { t: 1 }, SEQN: 1 });
    (await requestJson(`${backend.url}/api/devices/${id}/readings`, 'POST', reading)).status.should.equal(200);
  });

  it('a malformed JSON body gets the JSON 400 in every spelling, and a large one the 413', async function () {
    for (const spelled of spellings(`/api/devices/${id}/reset`)) {
      const bad = await new Promise((resolve, reject) => {
        const req = http.request(`${backend.url}${spelled}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } }, (res) => {
          let b = '';
          res.on('data', (c) => { b += c; });
          res.on('end', () => resolve({ status: res.statusCode, body: b }));
        });
        req.on('error', reject);
        req.end('{"from": ');
      });
      bad.status.should.equal(400, spelled);
      JSON.parse(bad.body).status.should.equal('NOK');
      (await flood(`${backend.url}${spelled}`, 'POST', 'application/json', 3 * MIB)).should.be.oneOf(413, 'closed');
    }
  });

  it('the device rate limit holds in every spelling of the readings route', async function () {
    const other = '5C:CF:7F:EE:00:02';
    (await registerSealed(backend.url, ring.material(other), other, { ipaddr: '192.0.2.12' })).status.should.equal(201);
    const paths = spellings(`/api/devices/${encodeURIComponent(other)}/readings`);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => requestJson(`${backend.url}${paths[i % 4]}`, 'POST', sealed(ring.material(other), other, 'reading', { data: { i }, SEQN: i + 1, ack: 0 }))));
    const statuses = answers.map((a) => a.status);
    // The device's burst is 20: the rest are refused once authenticated, whatever the spelling.
    statuses.filter((s) => s === 429).length.should.be.aboveOrEqual(15);
    statuses.filter((s) => s !== 429 && s !== 200).should.eql([]);
  });

  it('garbage for a device from a source under its limit costs that device nothing: every real uplink is accepted', async function () {
    const B = '5C:CF:7F:EE:00:0B';
    (await registerSealed(backend.url, ring.material(B), B, { ipaddr: '192.0.2.11' })).status.should.equal(201);
    const url = `${backend.url}/api/devices/${encodeURIComponent(B)}/readings`;
    let attacking = true;
    let garbage = 0;
    // About 60 forged readings a second for B (below the source's 200/s), in every spelling of the route.
    const attacker = (async () => {
      while (attacking) {
        await Promise.all(spellings(`/api/devices/${encodeURIComponent(B)}/readings`).map((p) => requestJson(`${backend.url}${p}`, 'POST', { iv: 'AAAAAAAAAAAAAAAAAAAAAA==', data: 'AAAAAAAAAAAAAAAAAAAAAA==', mac: 'x' })));
        garbage += 4;
        await new Promise((r) => setTimeout(r, 60));
      }
    })();
    const answers = [];
    try {
      for (let seqn = 1; seqn <= 25; seqn++) {
        answers.push((await requestJson(url, 'POST', sealed(ring.material(B), B, 'reading', { data: { t: seqn }, SEQN: seqn, ack: 0 }))).status);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      attacking = false;
      await attacker;
    }
    garbage.should.be.above(150);
    answers.should.eql(Array(25).fill(200));
  });

  it('a HEAD is never a config poll: 405 with Allow, in every spelling', async function () {
    for (const spelled of spellings(`/api/devices/${id}`)) {
      const res = await new Promise((resolve, reject) => http.request(`${backend.url}${spelled}`, { method: 'HEAD' }, resolve).on('error', reject).end());
      res.resume();
      res.statusCode.should.equal(405, spelled);
      res.headers.allow.should.equal('GET, POST, PUT, DELETE');
    }
  });

  it('no answer is JSONP: ?callback= gets plain JSON', async function () {
    const res = await requestJson(`${backend.url}/api/devices?callback=steal`, 'GET', undefined, { authorization: `Bearer ${TOKEN}` });
    res.status.should.equal(200);
    Array.isArray(res.body).should.be.true();
    const raw = await new Promise((resolve, reject) => {
      http.get(`${backend.url}/api/devices?callback=steal`, { headers: { authorization: `Bearer ${TOKEN}` } }, (r) => {
        let b = '';
        r.on('data', (c) => { b += c; });
        r.on('end', () => resolve({ type: r.headers['content-type'], body: b }));
      }).on('error', reject);
    });
    raw.type.should.match(/^application\/json/);
    raw.body.should.not.match(/steal/);
  });

  it('a rejected reading whose reason holds a newline is logged on one line', async function () {
    // A quiet second first, so that this source's next rejection is logged at once rather than summarised.
    await new Promise((r) => setTimeout(r, 2500));
    const before = backend.output.length;
    const body = '{"iv": "AAAAAAAAAAAAAAAAAAAAAA==",\n"data": \u0007 nope\n}';
    const res = await new Promise((resolve, reject) => {
      const req = http.request(`${backend.url}/api/devices/5C:CF:7F:EE:00:03/readings`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (r) => { r.resume(); resolve(r.statusCode); });
      req.on('error', reject);
      req.end(body);
    });
    res.should.equal(400);
    await new Promise((r) => setTimeout(r, 300));
    const logged = backend.output.slice(before);
    const lines = logged.split('\n').filter((l) => l.includes('5C:CF:7F:EE:00:03'));
    lines.should.have.length(1);
    logged.should.not.match(/\u0007/);
  });
});

describe('one backend per data directory', function () {
  this.timeout(120000);
  it('a second npm start on a data dir in use stops at once with one line naming it; after a kill -9 of the first, a new one starts', async function () {
    const { spawnSync } = require('node:child_process');
    const { freePort } = require('../../dist/app/ports');
    const tmp = tempDir('esp-e2ee-lock-');
    let first;
    let third;
    try {
      first = await startBackend({ dataDir: tmp.dir, script: path.join(root, 'scripts', 'start.js') });
      const started = Date.now();
      const second = spawnSync(process.execPath, [path.join(root, 'scripts', 'start.js')], {
        env: { ...process.env, E2EE_DATA_DIR: tmp.dir, PORT: String(await freePort()), E2EE_ADMIN_PORT: String(await freePort()) },
        encoding: 'utf8',
        timeout: 30000,
      });
      second.status.should.equal(2);
      second.stderr.trim().should.equal(`The data directory ${tmp.dir} is in use by another backend (npm start): stop that one, or set E2EE_DATA_DIR to another directory.`);
      second.stdout.should.not.match(/SQLITE_BUSY|ready/);
      (Date.now() - started).should.be.below(15000);
      // kill -9 leaves no stale lock.
      process.kill(first.pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 500));
      first = undefined;
      third = await startBackend({ dataDir: tmp.dir, script: path.join(root, 'scripts', 'start.js') });
      (await requestJson(`${third.url}/healthz`, 'GET')).status.should.equal(200);
    } finally {
      if (first) await first.stop();
      if (third) await third.stop();
      tmp.cleanup();
    }
  });
});
