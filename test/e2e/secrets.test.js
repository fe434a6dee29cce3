'use strict';
/**
 * Secret hygiene over a whole run of `npm start` with generated secrets: every log level (trace), every debug
 * message (debug nodes on every output of the shipped flow, to the log and to the editor's comms), every HTTP
 * response (device, operator and editor APIs, the errors included) and every exported flow. Neither the AES key
 * (hex or base64, any case), the keys derived from it, nor the admin token appears anywhere.
 */
require('should');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const WebSocket = require('ws');
const { startBackend } = require('../support/backend');
const { until } = require('../support/wait');
const { tempDir } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { SimDevice } = require('../../dist/sim/device');
const { StateFile } = require('../../dist/sim/state');

describe('secret hygiene: a full run captured, neither secret anywhere', function () {
  this.timeout(120000);
  let tmp;
  let backend;
  const captured = [];
  before(async function () {
    tmp = tempDir('esp-e2ee-secrets-');
    backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_LOG_LEVEL: 'trace', E2EE_REJECTION_LOG_INTERVAL: '1', E2EE_KEY: '', E2EE_ADMIN_TOKEN: '' } });
  });
  after(async function () {
    if (backend) await backend.stop();
    tmp.cleanup();
  });

  /** Any request; the status, headers and body are kept for the search. */
  function send(base, method, p, body, headers = {}) {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      const req = http.request(`${base}${p}`, { method, agent: false, headers: { ...(data !== undefined ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
        let b = '';
        res.on('data', (c) => { b += c; });
        res.on('end', () => {
          captured.push(`${method} ${p} ${res.statusCode} ${JSON.stringify(res.headers)} ${b}`);
          let parsed = b;
          try { parsed = JSON.parse(b); } catch { /* text */ }
          resolve({ status: res.statusCode, body: parsed });
        });
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  it('finds neither the key nor the token in logs, debug messages, HTTP responses or exported flows', async function () {
    const KEY = fs.readFileSync(path.join(tmp.dir, 'aes-key.hex'), 'utf8').trim();
    const TOKEN = fs.readFileSync(path.join(tmp.dir, 'admin-token'), 'utf8').trim();
    const keyBytes = Buffer.from(KEY, 'hex');
    const ring = new lib.DeviceKeyring(keyBytes, 'hmac-sha256');
    const derived = lib.deriveAuthKeys(keyBytes);
    const needles = [KEY, KEY.toUpperCase(), keyBytes.toString('base64'), keyBytes.toString('base64url'), TOKEN, derived.encKey.toString('hex'), derived.macKey.toString('hex'), derived.encKey.toString('base64'), derived.macKey.toString('base64')];
    const admin = (method, p, body) => send(backend.adminUrl, method, p, body, auth ? { authorization: `Bearer ${auth}` } : {});
    let auth;

    // The editor: a wrong login, then the right one.
    await admin('POST', '/auth/token', { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: 'wrong' });
    auth = (await admin('POST', '/auth/token', { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: TOKEN })).body.access_token;
    auth.should.be.a.String();
    // Debug nodes on every output of the shipped flow (whole messages, to the log and to the editor).
    const flows = (await admin('GET', '/flows')).body;
    const debugs = [];
    for (const n of flows.filter((x) => Array.isArray(x.wires) && x.z)) {
      n.wires.forEach((out, i) => {
        const id = `dbg-${n.id}-${i}`;
        // (Not named like its id: Node-RED takes a property equal to a node id for a reference.)
        debugs.push({ id, type: 'debug', z: n.z, name: `tap ${n.id} ${i}`, active: true, tosidebar: true, console: true, complete: 'true', wires: [] });
        out.push(id);
      });
    }
    const starts = () => (backend.output.match(/Started flows/g) || []).length;
    const before = starts();
    (await send(backend.adminUrl, 'POST', '/flows', [...flows, ...debugs], { authorization: `Bearer ${auth}`, 'node-red-deployment-type': 'full' })).status.should.equal(204);
    for (const end = Date.now() + 20000; starts() === before && Date.now() < end;) await new Promise((r) => setTimeout(r, 100));
    starts().should.be.above(before);
    // The editor's comms: every debug message as the sidebar receives it.
    const ws = new WebSocket(`${backend.adminUrl.replace('http', 'ws')}/comms`);
    await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
    ws.on('message', (m) => captured.push(`comms ${m}`));
    // Subscribed only once the comms accepted the token (it answers {"auth":"ok"}): a subscription sent before that
    // can be dropped on a busy machine, and then no debug message arrives.
    ws.send(JSON.stringify({ auth }));
    await until('the comms authenticated', () => captured.some((c) => c.includes('"auth":"ok"')), 10000);
    ws.send(JSON.stringify({ subscribe: 'debug' }));
    await new Promise((r) => setTimeout(r, 500));

    // Devices: registration, readings (good and bad), polls, commands.
    const state = new StateFile(path.join(tmp.dir, 'sim.json'));
    const sims = ['5C:CF:7F:01:00:01', '5C:CF:7F:01:00:02'].map((id) => new SimDevice({ id, baseUrl: backend.url, key: ring.material(id), state, interval: 1 }));
    for (const d of sims) {
      const reg = await d.register();
      reg.status.should.equal(201, JSON.stringify(reg.body) + backend.output.slice(-3000));
      for (let i = 0; i < 3; i++) (await d.postReading()).status.should.equal(200);
    }
    const id = encodeURIComponent(sims[0].id);
    const op = (method, p, body) => send(backend.url, method, `/api/devices${p}`, body, { authorization: `Bearer ${TOKEN}` });
    await send(backend.url, 'POST', `/api/devices/${id}/readings`, { iv: 'AAAAAAAAAAAAAAAAAAAAAA==', data: 'AAAAAAAAAAAAAAAAAAAAAA==', mac: 'AAAA' });
    await send(backend.url, 'POST', `/api/devices/${id}/readings`, '{not json');
    await send(backend.url, 'GET', `/api/devices/${id}`);
    await send(backend.url, 'PATCH', `/api/devices/${id}`);
    await send(backend.url, 'GET', '/api/devices', undefined, { authorization: 'Bearer wrong' });
    await op('GET', '');
    await op('PUT', `/${id}`, { name: 'kitchen', data: { interval: 5 } });
    await op('GET', `/${id}/readings`);
    (await op('POST', `/${id}/commands`, { led: true })).status.should.equal(202);
    await op('POST', `/${id}/reset`, {});
    await send(backend.url, 'GET', `/api/devices/${id}`);
    // The editor's view: settings, nodes, the sidebar's own API, and the flows as exported.
    for (const p of ['/settings', '/nodes', '/flows', '/esp-e2ee/stores', `/esp-e2ee/devices?store=`, `/esp-e2ee/devices/${id}/readings`]) await admin('GET', p);
    const exported = (await admin('GET', '/flows')).body;
    exported.some((n) => n.type === 'debug').should.be.true(); // the debug nodes were there
    await new Promise((r) => setTimeout(r, 1500)); // the last debug messages and the rejection summary
    await until('the debug messages on the comms', () => captured.filter((c) => c.startsWith('comms') && c.includes('dbg-')).length > 10, 10000).catch(() => undefined);
    ws.close();
    await backend.stop();
    const log = backend.output;
    backend = undefined;

    const flowFile = fs.readFileSync(path.join(tmp.dir, 'node-red', 'flows.json'), 'utf8');
    const everything = [log, ...captured, flowFile].join('\n');
    for (const [i, needle] of needles.entries()) {
      const at = everything.indexOf(needle);
      // (Where, without the secret itself.)
      (at < 0).should.be.true(`secret #${i} appears in what was captured, after: ${JSON.stringify(everything.slice(Math.max(0, at - 300), at))}`);
    }
    // The capture is real: the run was logged at trace level and the debug messages arrived both ways.
    log.should.match(/\[trace\]/);
    log.should.match(/\[info\] \[debug:tap /);
    captured.filter((c) => c.startsWith('comms') && c.includes('dbg-')).length.should.be.above(10);
    captured.length.should.be.above(30);
  });
});
