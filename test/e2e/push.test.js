'use strict';
/**
 * Safe push targets under `npm start`. A command is pushed only to a device address in the allowed ranges
 * (private ones by default): loopback, link-local (cloud metadata), multicast and unspecified addresses are
 * refused, as are public ones; each refusal is logged once and the command waits for the config poll.
 *
 * Everything stays on 127.0.0.1: the backend's http request node goes through a forward proxy of the test's own
 * (http_proxy; Node-RED's proxy agent tunnels with CONNECT), which maps the private address a simulated device
 * registered with onto its loopback listener and records every target it is asked for.
 */
require('should');
const crypto = require('node:crypto');
const http = require('node:http');
const path = require('node:path');
const { startBackend, freePort } = require('../support/backend');
const { until } = require('../support/wait');
const { tempDir } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { SimDevice, requestJson } = require('../../dist/sim/device');
const { StateFile } = require('../../dist/sim/state');

describe('safe push targets: private ranges only, refusals logged once, the poll delivers', function () {
  this.timeout(120000);
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
  const PRIVATE = '10.77.0.5';
  let tmp;
  let backend;
  let proxy;
  const proxied = [];
  const devices = [];
  before(async function () {
    tmp = tempDir('esp-e2ee-push-');
    // The forward proxy: requests for http://10.77.0.5:<port>/... go to 127.0.0.1:<port>; anything else is
    // recorded and refused (it must never be asked for).
    proxy = http.createServer((req, res) => {
      // (An absolute URI, as a proxy receives it; else the Host header names the target.)
      const target = new URL(req.url, `http://${req.headers.host}`);
      proxied.push(`${req.method} ${target.host}${target.pathname}`);
      if (target.hostname !== PRIVATE) {
        res.writeHead(502).end();
        return;
      }
      const upstream = http.request({ host: '127.0.0.1', port: target.port, path: target.pathname, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    // The proxy agent may tunnel instead (CONNECT host:port): the same mapping, for the whole connection.
    proxy.on('connect', (req, socket, head) => {
      const [host, targetPort] = req.url.split(':');
      proxied.push(`CONNECT ${req.url}`);
      if (host !== PRIVATE) {
        socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
        return;
      }
      const upstream = require('node:net').connect(Number(targetPort), '127.0.0.1', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    const port = await freePort();
    await new Promise((resolve) => proxy.listen(port, '127.0.0.1', resolve));
    // Pushes go only to where a device's uplinks come from: the devices appear from their addresses through a
    // trusted proxy's X-Forwarded-For (everything here is on loopback).
    backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, http_proxy: `http://127.0.0.1:${port}`, no_proxy: '', E2EE_TRUST_PROXY: 'loopback' } });
  });
  after(async function () {
    for (const d of devices) await d.stop();
    if (backend) await backend.stop();
    proxy?.close();
    tmp.cleanup();
  });
  const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });

  /** A simulated device that claims `advertise` and whose requests come from `from` (default: what it claims). */
  function device(id, advertise, from = advertise) {
    const headers = { 'x-forwarded-for': from };
    const d = new SimDevice({ id, baseUrl: backend.url, key: ring.material(id), state: new StateFile(path.join(tmp.dir, `${id.replace(/:/g, '')}.json`)), interval: 0.3, advertise, headers });
    devices.push(d);
    return d;
  }

  it('pushes a command to a device in a private range', async function () {
    const d = device('5C:CF:7F:0B:00:01', PRIVATE);
    await d.listen();
    (await d.register()).status.should.equal(201);
    (await op('POST', `/${encodeURIComponent(d.id)}/commands`, { led: true })).status.should.equal(202);
    await until('the pushed command', () => d.received.length === 1).catch((err) => { throw new Error(`${err.message}\n${backend.output.slice(-1500)}`); });
    d.received[0].via.should.equal('push');
    proxied.should.eql([`CONNECT ${PRIVATE}:${d.cmdPort}`]);
  });

  it('pushes to the address the device sends from, never to the one it claims (a key holder cannot aim the push)', async function () {
    // Claims 10.77.0.99 (say, a database host); its uplinks come from 10.77.0.5.
    const d = device('5C:CF:7F:0B:00:09', '10.77.0.99', PRIVATE);
    await d.listen();
    (await d.register()).status.should.equal(201);
    (await op('GET', '')).body.find((row) => row.deviceid === d.id).ipaddr.should.equal('10.77.0.99');
    const before = proxied.length;
    (await op('POST', `/${encodeURIComponent(d.id)}/commands`, { led: true })).status.should.equal(202);
    await until('the pushed command', () => d.received.length === 1);
    d.received[0].via.should.equal('push');
    proxied.slice(before).should.eql([`CONNECT ${PRIVATE}:${d.cmdPort}`]);
  });

  /** Registers a device (sealed, as devices do) with its command port on `port`, a listener of the test's. */
  async function registerAt(id, port) {
    const d = device(id, PRIVATE);
    const r = await requestJson(`${backend.url}/api/devices/${encodeURIComponent(id)}`, 'POST', d.seal('register', { ipaddr: PRIVATE, ssid: 'lab', cmdport: port, SEQN: d.nextSeq(), ack: 0 }), { 'x-forwarded-for': PRIVATE });
    r.status.should.equal(201);
    return d;
  }
  async function listenOn(handler) {
    const server = http.createServer(handler);
    const port = await freePort();
    await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
    return { server, port };
  }

  it('does not follow a redirect from the device (e.g. to a metadata address)', async function () {
    const { server, port } = await listenOn((req, res) => res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end());
    try {
      const d = await registerAt('5C:CF:7F:0B:00:02', port);
      const before = proxied.length;
      (await op('POST', `/${encodeURIComponent(d.id)}/commands`, { led: true })).status.should.equal(202);
      await until('the push', () => proxied.length > before);
      await new Promise((r) => setTimeout(r, 500));
      proxied.slice(before).should.eql([`CONNECT ${PRIVATE}:${port}`]);
      // Not delivered: the poll offers it.
      await d.poll();
      d.received.map((r) => r.via).should.eql(['poll']);
    } finally {
      server.close();
    }
  });

  it('a command held back by whoever answers at the device address (200, nothing delivered) still reaches the device by its poll', async function () {
    const { server, port } = await listenOn((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"OK"}'));
    });
    try {
      const d = await registerAt('5C:CF:7F:0B:00:03', port);
      const before = proxied.length;
      (await op('POST', `/${encodeURIComponent(d.id)}/commands`, { led: true })).status.should.equal(202);
      await until('the push', () => proxied.length > before);
      await new Promise((r) => setTimeout(r, 500));
      // The 200 proves nothing: the command is still pending, and the poll delivers it.
      const log = async () => (await op('GET', `/${encodeURIComponent(d.id)}/commands`)).body.map((c) => c.state);
      (await log()).should.eql(['pending']);
      await d.poll();
      d.received.map((r) => `${r.via} ${JSON.stringify(r.cmd)}`).should.eql(['poll {"led":true}']);
      // Delivered once the device's next uplink acknowledges it.
      (await d.postReading()).status.should.equal(200);
      await until('the acknowledgement', async () => (await log())[0] === 'acknowledged');
    } finally {
      server.close();
    }
  });

  for (const [name, address] of [['loopback', '127.0.0.1'], ['link-local (cloud metadata)', '169.254.169.254'], ['unspecified', '0.0.0.0'], ['IPv6 loopback', '::1'], ['multicast', '224.0.0.1'], ['public', '8.8.8.8']]) {
    it(`never pushes to a ${name} address: logged once, and the command arrives with the poll`, async function () {
      const id = `5C:CF:7F:0B:01:${String(devices.length).padStart(2, '0')}`;
      const d = device(id, address);
      await d.listen();
      (await d.register()).status.should.equal(201);
      const before = proxied.length;
      for (const led of [true, false]) (await op('POST', `/${encodeURIComponent(id)}/commands`, { led })).status.should.equal(202);
      d.run();
      await until('both commands by poll', () => d.received.length === 2, 20000);
      d.received.map((r) => r.via).should.eql(['poll', 'poll']);
      proxied.length.should.equal(before);
      const lines = backend.output.split('\n').filter((l) => l.includes(`Commands to device ${id} are not pushed`));
      lines.length.should.equal(1);
      lines[0].should.match(name === 'public' ? /outside the allowed push ranges/ : /loopback, link-local, multicast or unspecified/);
    });
  }
});
