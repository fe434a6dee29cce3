'use strict';
/**
 * The limits of `npm start` as an attacker or a careless client meets them: the editor on its own listener (its
 * login throttle cannot lock out devices or operators), rate limits with 429 and no database write, 405 for a
 * known path, bodies cut off while they are read, and server timeouts for stalled clients.
 */
require('should');
const crypto = require('node:crypto');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { startBackend } = require('../support/backend');
const { until } = require('../support/wait');
const { tempDir, querySqlite } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { requestJson } = require('../../dist/sim/device');
const { registerSealed } = require('../support/device');


describe('limits of npm start: editor listener, rate limits, 405, body limits, timeouts', function () {
  this.timeout(120000);
  let tmp;
  let backend;
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
  const MAC = '5C:CF:7F:DD:00:01';
  const id = encodeURIComponent(MAC);
  before(async function () {
    tmp = tempDir('esp-e2ee-limits-');
    // The default rate limits (device 5/s burst 20, source 200/s burst 400).
    backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_REJECTION_LOG_INTERVAL: '1' } });
  });
  after(async function () {
    if (backend) await backend.stop();
    tmp.cleanup();
  });
  const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });

  it('serves the editor on its own listener only: the device port has no editor, and a login lockout there leaves devices and operators alone', async function () {
    (await requestJson(`${backend.adminUrl}/settings`, 'GET')).status.should.equal(401);
    for (const p of ['/settings', '/auth/token', '/flows', '/admin/', '/comms']) {
      const r = await requestJson(`${backend.url}${p}`, 'GET');
      r.status.should.equal(404, p);
    }
    // Node-RED throttles editor logins globally after a few failures.
    let throttled = false;
    for (let i = 0; i < 12 && !throttled; i++) {
      const r = await requestJson(`${backend.adminUrl}/auth/token`, 'POST', { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: `wrong${i}` });
      throttled = r.status === 429 || /Too many/i.test(JSON.stringify(r.body));
    }
    throttled.should.be.true('the editor login is throttled');
    // Devices and the operator API still work.
    (await registerSealed(backend.url, ring.material(MAC), MAC, { ipaddr: '192.0.2.7' })).status.should.equal(201);
    (await op('GET', '')).status.should.equal(200);
    const reading = lib.encryptToWire(ring.material(MAC), Buffer.from(JSON.stringify({ data: { t: 1 }, SEQN: 1 })), MAC);
    (await requestJson(`${backend.url}/api/devices/${id}/readings`, 'POST', reading)).status.should.equal(200);
  });

  it('keeps readings for 90 days by default and says so; a bad E2EE_RETENTION keeps everything, with an error line', async function () {
    // (The store opens just after the flows start.)
    await until('the retention line', () => /Readings kept: at most 90d old/.test(backend.output));
    const other = tempDir('esp-e2ee-retention-');
    const b = await startBackend({ dataDir: other.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_RETENTION: 'forever' } });
    try {
      await until('the retention line', () => /Readings kept: all \(no retention set\)/.test(b.output));
      b.output.should.match(/\[error\].*Retention must be like 30d, 12h, 1000 \(readings per device\) or 30d,1000: forever/);
    } finally {
      await b.stop();
      other.cleanup();
    }
  });

  it('answers 405 with Allow for a known path and a JSON 404 for an unknown one', async function () {
    const patch = await new Promise((resolve, reject) => {
      http.request(`${backend.url}/api/devices/${id}`, { method: 'PATCH' }, (res) => {
        let b = '';
        res.on('data', (c) => { b += c; });
        res.on('end', () => resolve({ status: res.statusCode, allow: res.headers.allow, body: JSON.parse(b) }));
      }).on('error', reject).end();
    });
    patch.status.should.equal(405);
    patch.allow.should.equal('GET, POST, PUT, DELETE');
    patch.body.should.eql({ status: 'NOK', message: 'Method PATCH is not allowed here' });
    const del = await requestJson(`${backend.url}/api/devices`, 'DELETE');
    del.status.should.equal(405);
    (await requestJson(`${backend.url}/api/elsewhere`, 'GET')).status.should.equal(404);
  });

  it('rate-limits a device: the excess gets 429 with Retry-After, and no reading of it is stored', async function () {
    const before = (await querySqlite(path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite'), 'SELECT count(*) AS n FROM readings WHERE deviceid = ?', [MAC]))[0].n;
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => {
      const wire = lib.encryptToWire(ring.material(MAC), Buffer.from(JSON.stringify({ data: { t: i }, SEQN: 100 + i })), MAC);
      return new Promise((resolve, reject) => {
        const req = http.request(`${backend.url}/api/devices/${id}/readings`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
          let b = '';
          res.on('data', (c) => { b += c; });
          res.on('end', () => resolve({ status: res.statusCode, retry: res.headers['retry-after'], body: b }));
        });
        req.on('error', reject);
        req.end(JSON.stringify(wire));
      });
    }));
    const ok = answers.filter((a) => a.status === 200);
    const limited = answers.filter((a) => a.status === 429);
    const seconds = (Date.now() - started) / 1000;
    (ok.length + limited.length).should.equal(60);
    // The burst of 20, plus what 5/s refilled while the 60 were answered (a slow machine refills more).
    ok.length.should.be.within(18, 20 + Math.ceil(5 * seconds));
    limited.length.should.be.above(0);
    for (const a of limited) {
      Number(a.retry).should.be.aboveOrEqual(1);
      JSON.parse(a.body).should.eql({ status: 'NOK', message: 'Too many requests, retry later' });
    }
    const after = (await querySqlite(path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite'), 'SELECT count(*) AS n FROM readings WHERE deviceid = ?', [MAC]))[0].n;
    (after - before).should.equal(ok.length);
    // One line at once, then a summary: not a line per request.
    await new Promise((r) => setTimeout(r, 1500));
    const lines = backend.output.split('\n').filter((l) => /rate-limited/.test(l));
    lines.length.should.be.within(1, 3);
    lines.join('\n').should.match(/more requests from 127\.0\.0\.1 rejected in the last 1 s: rate-limited \d+/);
    // Another device is not affected.
    (await registerSealed(backend.url, ring.material('5C:CF:7F:DD:00:02'), '5C:CF:7F:DD:00:02', { ipaddr: '192.0.2.8' })).status.should.equal(201);
  });

  it('cuts an oversized readings body off while reading it: 413 as JSON, the connection closed', async function () {
    const result = await new Promise((resolve) => {
      let sent = 0;
      let answer;
      const req = http.request(`${backend.url}/api/devices/${encodeURIComponent('5C:CF:7F:DD:00:03')}/readings`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        answer = { status: res.statusCode, body: '' };
        res.on('data', (c) => { answer.body += c; });
      });
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      const pump = () => {
        // 64 MiB offered; the server stops reading long before.
        while (sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return req.once('drain', pump);
        }
        req.end();
      };
      req.on('error', () => undefined);
      // (The answer may still be parsed after the cut-off connection closes.)
      req.on('close', () => setTimeout(() => resolve({ sent, answer }), 100));
      pump();
    });
    result.answer.status.should.equal(413);
    JSON.parse(result.answer.body).message.should.match(/larger than 1048576 bytes/);
    result.sent.should.be.below(64 * 1024 * 1024);
  });

  it('closes a connection that stalls in its headers (headers timeout)', async function () {
    const started = Date.now();
    const closed = await new Promise((resolve) => {
      const socket = net.connect(backend.port, '127.0.0.1', () => socket.write(`GET /api/devices/${id} HTTP/1.1\r\nHost: x\r\n`));
      socket.on('data', () => undefined);
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(true));
      setTimeout(() => { resolve(false); socket.destroy(); }, 25000);
    });
    closed.should.be.true('the server closed the stalled connection');
    (Date.now() - started).should.be.above(5000);
  });
});
