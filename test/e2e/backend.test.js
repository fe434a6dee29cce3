'use strict';
require('should');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { startBackend } = require('../support/backend');
const { until } = require('../support/wait');
const { tempDir, querySqlite } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { SimDevice, requestJson } = require('../../dist/sim/device');
const { StateFile } = require('../../dist/sim/state');



describe('end to end: npm start + simulator, real HTTP on loopback', function () {
  this.timeout(180000);

  describe('as a newcomer starts it (generated key and token)', function () {
    let tmp;
    let backend;
    const devices = [];
    before(async function () {
      tmp = tempDir('esp-e2ee-e2e-');
      backend = await startBackend({ dataDir: tmp.dir });
    });
    after(async function () {
      for (const d of devices) await d.stop();
      if (backend) await backend.stop();
      tmp.cleanup();
    });

    const keyHex = () => fs.readFileSync(path.join(tmp.dir, 'aes-key.hex'), 'utf8').trim();
    const token = () => fs.readFileSync(path.join(tmp.dir, 'admin-token'), 'utf8').trim();
    const op = (method, suffix, body, tok = token()) => requestJson(`${backend.url}/api/devices${suffix}`, method, body, tok === null ? {} : { authorization: `Bearer ${tok}` });

    it('stores the generated key and token with mode 0600; not a terminal, so it names their files instead of printing them', function () {
      for (const f of ['aes-key.hex', 'admin-token']) (fs.statSync(path.join(tmp.dir, f)).mode & 0o777).should.equal(0o600);
      /^[0-9a-f]{32}$/.test(keyHex()).should.be.true();
      backend.output.should.not.containEql(keyHex());
      backend.output.should.not.containEql(token());
      backend.output.should.containEql(`stored in ${path.join(tmp.dir, 'aes-key.hex')} (mode 0600)`);
      backend.output.should.containEql(`stored in ${path.join(tmp.dir, 'admin-token')} (mode 0600)`);
      backend.output.should.match(/not printed here, because the output is not a terminal/);
      backend.output.should.containEql('Listening on loopback only');
    });

    it('the simulator registers, posts readings, gets a config change and runs commands; readings are stored', async function () {
      const state = new StateFile(path.join(tmp.dir, 'sim-state.json'));
      // npm start's default: the generated key is a master, and each device has its own key derived from it.
      const ring = new lib.DeviceKeyring(Buffer.from(keyHex(), 'hex'), 'hmac-sha256');
      const dev = new SimDevice({ id: '5C:CF:7F:AA:00:01', baseUrl: backend.url, key: ring.material('5C:CF:7F:AA:00:01'), state, interval: 0.2 });
      devices.push(dev);
      await dev.listen();
      (await dev.register()).status.should.equal(201);
      dev.run();
      await until('three stored readings', async () => (await op('GET', `/${dev.id}/readings`)).body.length >= 3);

      // Operator changes the config: cfgsn goes up and the device applies the interval.
      const put = await op('PUT', `/${dev.id}`, { name: 'greenhouse', data: { interval: 0.3, led: false } });
      put.status.should.equal(200);
      put.body.cfgsn.should.equal(2);
      await until('the device to apply cfgsn 2', () => dev.cfgsn === 2);
      dev.interval.should.equal(0.3);

      // A command: the simulator registered at 127.0.0.1, where commands are never pushed (test/e2e/push.test.js
      // pushes to a private address), so it arrives with the config poll and runs there.
      const cmd = await op('POST', `/${dev.id}/commands`, { led: true });
      cmd.status.should.equal(202);
      cmd.body.should.containEql({ status: 'OK', seqn: 1 });
      await until('the command', () => dev.received.length === 1, 20000);
      dev.led.should.be.true();
      dev.received[0].via.should.equal('poll');
      backend.output.should.match(/Commands to device 5C:CF:7F:AA:00:01 are not pushed: its address 127\.0\.0\.1 is loopback/);

      // A device without a command server gets its commands in the config poll too.
      const nat = new SimDevice({ id: '5C:CF:7F:AA:00:02', baseUrl: backend.url, key: ring.material('5C:CF:7F:AA:00:02'), state, interval: 0.2 });
      devices.push(nat);
      (await nat.register()).status.should.equal(201);
      nat.run();
      (await op('POST', `/${nat.id}/commands`, { interval: 0.25 })).status.should.equal(202);
      await until('the polled command', () => nat.received.length === 1, 20000);
      nat.received[0].via.should.equal('poll');
      nat.interval.should.equal(0.25);
      nat.rejectedCommands.should.eql([]);

      const readings = (await op('GET', `/${dev.id}/readings?limit=1000`)).body;
      readings.length.should.be.aboveOrEqual(3);
      readings[0].payload.should.have.properties(['data', 'SEQN']);
      const seqns = readings.map((r) => r.seqn);
      new Set(seqns).size.should.equal(seqns.length);
      const db = path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite');
      const rows = await querySqlite(db, 'SELECT count(*) AS n FROM readings WHERE deviceid = ?', [dev.id]);
      rows[0].n.should.be.aboveOrEqual(readings.length);
      const list = (await op('GET', '')).body;
      list.find((d) => d.deviceid === dev.id).should.containEql({ name: 'greenhouse', online: true, cfgsn: 2 });
    });

    it('the editor and its admin API sit behind the admin login', async function () {
      (await requestJson(`${backend.adminUrl}/flows`, 'GET')).status.should.equal(401);
      const bad = await requestJson(`${backend.adminUrl}/auth/token`, 'POST', { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: 'wrong' });
      bad.status.should.equal(403);
      const good = await requestJson(`${backend.adminUrl}/auth/token`, 'POST', { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: token() });
      good.status.should.equal(200);
      const flows = await requestJson(`${backend.adminUrl}/flows`, 'GET', undefined, { authorization: `Bearer ${good.body.access_token}` });
      flows.status.should.equal(200);
      // Credentials never travel with the flow.
      JSON.stringify(flows.body).should.not.containEql(keyHex());
      JSON.stringify(flows.body).should.not.containEql(token());
    });
  });

  describe('every endpoint, with explicit key and token', function () {
    let tmp;
    let backend;
    const KEY = crypto.randomBytes(16).toString('hex');
    const TOKEN = crypto.randomBytes(16).toString('hex');
    const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
    const MAC = '5C:CF:7F:BB:00:01';
    const key = ring.material(MAC);
    before(async function () {
      tmp = tempDir('esp-e2ee-e2e-');
      // (No rate limit here, the limits have their own suite; rejection summaries every second.)
      backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_RATE_LIMIT: 'off', E2EE_REJECTION_LOG_INTERVAL: '1' } });
    });
    after(async function () {
      if (backend) await backend.stop();
      tmp.cleanup();
    });
    const dev = (method, suffix, body, headers) => requestJson(`${backend.url}/api/devices/${encodeURIComponent(MAC)}${suffix}`, method, body, headers);
    const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });
    const reading = (seqn, id = MAC) => lib.encryptToWire(ring.material(id), Buffer.from(JSON.stringify({ data: { a0: 1 }, SEQN: seqn })), id);
    /** A sealed registration or poll of a device, as the firmware sends them (kv 0). */
    const sealed = (type, plaintext, id = MAC) => lib.encryptToWire(ring.material(id), Buffer.from(JSON.stringify(plaintext)), id, { type, kv: 0 });
    /** Opens a sealed config answer. */
    const opened = (body, id = MAC) => JSON.parse(lib.decryptEnvelope(ring.material(id), lib.parseEnvelope(body), id, 'config').toString());
    const poll = (seqn, id = MAC) => requestJson(`${backend.url}/api/devices/${encodeURIComponent(id)}/poll`, 'POST', sealed('poll', { SEQN: seqn, ack: 0 }, id));
    /** Raw POST, for bodies that are not JSON. */
    const rawPost = (suffix, text, type = 'application/json') => new Promise((resolve, reject) => {
      const req = require('node:http').request(`${backend.url}/api/devices/${encodeURIComponent(MAC)}${suffix}`, { method: 'POST', headers: { 'content-type': type } }, (res) => {
        let b = '';
        res.on('data', (c) => { b += c; });
        res.on('end', () => resolve({ status: res.statusCode, text: b }));
      });
      req.on('error', reject);
      req.end(text);
    });

    it('does not print the key or token it was given', function () {
      backend.output.should.not.containEql(KEY);
      backend.output.should.not.containEql(TOKEN);
    });

    it('register (sealed): 201 then 200, each with a sealed config answer; invalid input 400; plain 401', async function () {
      const first = await dev('POST', '', sealed('register', { ipaddr: '127.0.0.1', ssid: 'lab', SEQN: 1, ack: 0 }));
      first.status.should.equal(201);
      opened(first.body).should.eql({ re: 1, cfgsn: 1, data: {}, commands: [], more: false });
      const again = await dev('POST', '', sealed('register', { ipaddr: '127.0.0.2', ssid: 'lab2', SEQN: 2, ack: 0 }));
      again.status.should.equal(200);
      opened(again.body).re.should.equal(2);
      (await op('GET', '')).body[0].should.containEql({ deviceid: MAC, ipaddr: '127.0.0.2', ssid: 'lab2', cfgsn: 1 });
      const invalid = await dev('POST', '', sealed('register', { ipaddr: 'not-an-ip', ssid: 'lab', SEQN: 3 }));
      invalid.status.should.equal(400);
      invalid.body.should.eql({ status: 'NOK', message: 'ipaddr must be an IPv4 or IPv6 address' });
      const badId = "x'; DROP TABLE devices;--";
      (await requestJson(`${backend.url}/api/devices/${encodeURIComponent(badId)}`, 'POST', sealed('register', { ipaddr: '127.0.0.1', ssid: 'x', SEQN: 1 }, badId))).status.should.equal(400);
      const plain = await dev('POST', '', { ipaddr: '127.0.0.1', ssid: 'lab' });
      plain.status.should.equal(401);
      plain.body.message.should.match(/sealed body/);
    });

    it('config poll (sealed): 200 with a sealed {re, cfgsn, data, commands, more}; unknown 404; the plain GET 401', async function () {
      const r = await poll(4);
      r.status.should.equal(200);
      opened(r.body).should.eql({ re: 4, cfgsn: 1, data: {}, commands: [], more: false });
      const unknown = await poll(1, 'nobody');
      unknown.status.should.equal(404);
      unknown.body.should.eql({ status: 'NOK', message: 'Device NOT Registered' });
      (await dev('GET', '')).status.should.equal(401);
    });

    it('readings: 200 for a fresh SEQN; replay, stale, garbage, bad MAC, bad JSON and oversize all get the same 400', async function () {
      const ok = await dev('POST', '/readings', reading(10));
      ok.status.should.equal(200);
      ok.body.should.eql({ status: 'OK' });
      const other = lib.parseKey('hex', crypto.randomBytes(16).toString('hex'), 'hmac-sha256');
      const good = reading(11);
      const rejected = [
        await rawPost('/readings', JSON.stringify(reading(10))), // replay
        await rawPost('/readings', JSON.stringify(reading(3))), // stale
        await rawPost('/readings', 'garbage'),
        await rawPost('/readings', '{"iv": "broken'), // bad JSON
        await rawPost('/readings', JSON.stringify({ ...good, mac: Buffer.alloc(32).toString('base64') })), // wrong MAC
        await rawPost('/readings', JSON.stringify(lib.encryptToWire(other, Buffer.from('{"SEQN":12}'), MAC))), // wrong key
        await rawPost('/readings', JSON.stringify(reading(13, 'SOME:OTHER:DEVICE'))), // MAC for another device
        await rawPost('/readings', JSON.stringify({ iv: good.iv, data: 'A'.repeat(70000), mac: good.mac })), // oversize
        await rawPost('/readings', JSON.stringify({ ...good, iv: 'AAAA' })), // IV not 16 bytes
        await rawPost('/readings', JSON.stringify(reading(11)), 'text/plain'),
      ];
      // The last one (a fresh SEQN as text/plain) is fine.
      rejected.pop().status.should.equal(200);
      for (const r of rejected) {
        r.status.should.equal(400);
        r.text.should.equal(rejected[0].text);
      }
      JSON.parse(rejected[0].text).should.eql({ status: 'NOK', message: 'Rejected' });
      // The reasons are in the Node-RED log only: the first at once, the others in the source's summary.
      backend.output.should.match(/rejected: replay/);
      const summary = await until('the rejection summary', () => /more requests from 127\.0\.0\.1 rejected in the last 1 s: (.*)/.exec(backend.output));
      summary[1].should.match(/stale \d/);
      summary[1].should.match(/Decryption failed \d/);
      // One line for the first and one summary, not one per rejection.
      (backend.output.match(/rejected/g) || []).length.should.be.below(rejected.length);
    });

    it('readings for an unregistered id or an invalid id get the same 400, and leave no replay state on disk', async function () {
      const post = async (id) => {
        const r = await requestJson(`${backend.url}/api/devices/${encodeURIComponent(id)}/readings`, 'POST', reading(5, id));
        return { status: r.status, text: JSON.stringify(r.body) };
      };
      const strangers = ['5C:CF:7F:99:99:01', 'not a valid id'];
      const answers = [];
      for (const id of strangers) answers.push(await post(id));
      const replay = await rawPost('/readings', JSON.stringify(reading(10)));
      for (const a of answers) {
        a.status.should.equal(400);
        JSON.parse(a.text).should.eql(JSON.parse(replay.text));
      }
      await until('the reason in the log', () => /rejected[^\n]*Device NOT Registered/.test(backend.output));
      // Enough other writes for any deferred state to have been flushed (it is not, for unknown ids).
      const filler = '5C:CF:7F:BB:00:FF';
      (await requestJson(`${backend.url}/api/devices/${encodeURIComponent(filler)}`, 'POST', sealed('register', { ipaddr: '192.0.2.9', ssid: 'lab', SEQN: 0 }, filler))).status.should.equal(201);
      for (let seqn = 1; seqn < 13; seqn++) (await requestJson(`${backend.url}/api/devices/${encodeURIComponent(filler)}/readings`, 'POST', reading(seqn, filler))).status.should.equal(200);
      const rows = await querySqlite(path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite'), 'SELECT deviceid FROM replay_state WHERE deviceid IN (?, ?)', strangers);
      rows.should.eql([]);
      (await op('DELETE', `/${encodeURIComponent(filler)}`)).status.should.equal(200);
    });

    it('clean JSON errors: bad JSON 400, an oversized body 413, an out-of-range since 400, an unknown /api route 404', async function () {
      const send = (method, suffix, text, headers = {}) => new Promise((resolve, reject) => {
        // (Content-Length given: Node's client sends none for a DELETE body by itself.)
        const length = text === undefined ? {} : { 'content-length': String(Buffer.byteLength(text)) };
        const req = require('node:http').request(`${backend.url}${suffix}`, { method, headers: { 'content-type': 'application/json', ...length, ...headers } }, (res) => {
          let b = '';
          res.on('data', (c) => { b += c; });
          res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body: b }));
        });
        req.on('error', reject);
        req.end(text);
      });
      const auth = { authorization: `Bearer ${TOKEN}` };
      const badRegister = await send('POST', `/api/devices/${encodeURIComponent(MAC)}/poll`, '{"iv": ');
      badRegister.status.should.equal(400);
      JSON.parse(badRegister.body).should.eql({ status: 'NOK', message: 'The request body is not valid JSON' });
      const badPut = await send('PUT', `/api/devices/${encodeURIComponent(MAC)}`, '{"name": ', auth);
      badPut.status.should.equal(400);
      JSON.parse(badPut.body).status.should.equal('NOK');
      // Found by the fuzz suite: Node-RED parses DELETE bodies too, and answered a malformed one with 500.
      const badDelete = await send('DELETE', `/api/devices/${encodeURIComponent(MAC)}`, '{"x', auth);
      badDelete.status.should.equal(400);
      JSON.parse(badDelete.body).message.should.equal('The request body is not valid JSON');
      const huge = await send('POST', `/api/devices/${encodeURIComponent(MAC)}`, JSON.stringify({ ipaddr: '192.0.2.1', ssid: 'x', pad: 'x'.repeat(1100 * 1024) }));
      huge.status.should.equal(413);
      // (128 KiB on the routes other than readings: the largest valid body, an update with 16 KiB of config, fits.)
      JSON.parse(huge.body).message.should.match(/larger than 131072 bytes/);
      const since = await send('GET', `/api/devices/${encodeURIComponent(MAC)}/readings?since=99999999999999999999`, undefined, auth);
      since.status.should.equal(400);
      JSON.parse(since.body).message.should.match(/since must be/);
      const unknown = await send('GET', '/api/nothing/here', undefined);
      unknown.status.should.equal(404);
      unknown.type.should.match(/application\/json/);
      JSON.parse(unknown.body).should.eql({ status: 'NOK', message: 'Not found' });
      backend.output.should.not.match(/\[error\]/);
      // Nothing was changed by the bad requests.
      (await op('GET', '')).body[0].cfgsn.should.equal(1);
    });

    it('operator endpoints refuse no token and a wrong token', async function () {
      const routes = [['GET', ''], ['PUT', `/${encodeURIComponent(MAC)}`, { name: 'x' }], ['DELETE', `/${encodeURIComponent(MAC)}`], ['GET', `/${encodeURIComponent(MAC)}/readings`], ['POST', `/${encodeURIComponent(MAC)}/commands`, { led: true }], ['POST', `/${encodeURIComponent(MAC)}/reset`, {}]];
      for (const [method, suffix, body] of routes) {
        for (const headers of [{}, { authorization: 'Bearer wrong-token' }, { authorization: TOKEN }]) {
          const r = await requestJson(`${backend.url}/api/devices${suffix}`, method, body, headers);
          r.status.should.equal(401, `${method} ${suffix} ${JSON.stringify(headers)}`);
        }
      }
      (await op('GET', '')).body.map((d) => d.deviceid).should.eql([MAC]); // the device still exists
    });

    it('operator endpoints work with the token, and SQL-injection strings do no harm', async function () {
      const evil = "x'); DROP TABLE devices; --";
      const put = await op('PUT', `/${encodeURIComponent(MAC)}`, { name: evil, data: { note: evil, interval: 5 } });
      put.status.should.equal(200);
      put.body.should.containEql({ name: evil, cfgsn: 2 });
      (await op('GET', '')).body.map((d) => d.name).should.eql([evil]);
      (await op('GET', `/${encodeURIComponent(MAC)}/readings`)).body.map((r) => r.seqn).should.eql([11, 10]);
      (await op('PUT', `/${encodeURIComponent(MAC)}`, { data: [1] })).status.should.equal(400);
      (await op('GET', `/${encodeURIComponent(MAC)}/readings?limit=abc`)).status.should.equal(400);
      // Reset: the counter forgets, so an old number passes once more.
      (await op('POST', `/${encodeURIComponent(MAC)}/reset`, {})).status.should.equal(200);
      backend.output.should.match(/Replay counter of device 5C:CF:7F:BB:00:01 reset/);
      (await dev('POST', '/readings', reading(1))).status.should.equal(200);
      const cmd = await op('POST', `/${encodeURIComponent(MAC)}/commands`, { led: true });
      cmd.status.should.equal(202);
      // Not pushed to a loopback address: the poll's sealed answer carries the command, sealed for the device.
      const answer = opened((await poll(2)).body);
      answer.commands.length.should.equal(1);
      const plain = JSON.parse(lib.decryptEnvelope(key, lib.parseEnvelope(answer.commands[0]), MAC, 'command').toString());
      plain.should.eql({ cmd: { led: true }, SEQN: 1 });
      (await op('DELETE', `/${encodeURIComponent(MAC)}`)).status.should.equal(200);
      (await poll(3)).status.should.equal(400); // its keys are revoked
    });
  });

  describe('crash: SIGKILL in the middle of a burst, then restart on the same data dir (the shipped flow: replay-guard persist with-next-write)', function () {
    let tmp;
    const KEY = crypto.randomBytes(16).toString('hex');
    const TOKEN = crypto.randomBytes(16).toString('hex');
    const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
    before(() => { tmp = tempDir('esp-e2ee-crash-'); });
    after(() => tmp.cleanup());

    it('every reading that got a 200 is in the store, and re-sending it is rejected', async function () {
      // (No rate limit: 20 posters as fast as the backend answers.)
      const env = { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn', E2EE_RATE_LIMIT: 'off' };
      let backend = await startBackend({ dataDir: tmp.dir, env });
      const state = new StateFile(path.join(tmp.dir, 'sim.json'));
      const sims = [];
      for (let i = 0; i < 10; i++) {
        const id = `5C:CF:7F:CC:00:${String(i).padStart(2, '0')}`;
        const d = new SimDevice({ id, baseUrl: backend.url, key: ring.material(id), state, interval: 1 });
        (await d.register()).status.should.equal(201);
        sims.push(d);
      }
      const acked = [];
      let killed = false;
      let failures = 0;
      // Two posters per device, as fast as the backend answers.
      const posters = sims.flatMap((d) => [0, 1].map(async () => {
        while (!killed) {
          try {
            const r = await d.postReading();
            if (r.status === 200) acked.push({ deviceid: d.id, seqn: r.seqn, sent: r.sent });
          } catch {
            failures++;
            return;
          }
        }
      }));
      await until('a burst under way', () => acked.length >= 300, 60000);
      await backend.kill();
      killed = true;
      await Promise.all(posters);
      failures.should.be.above(0); // some requests were cut off by the kill

      // Same port, as a device's configured URL would not change.
      backend = await startBackend({ dataDir: tmp.dir, env, port: backend.port });
      try {
        const rows = await querySqlite(path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite'), 'SELECT deviceid, seqn FROM readings');
        const stored = new Set(rows.map((r) => `${r.deviceid}/${r.seqn}`));
        const lost = acked.filter((a) => !stored.has(`${a.deviceid}/${a.seqn}`));
        lost.should.eql([], `${lost.length} of ${acked.length} acknowledged readings lost`);
        // None stored twice.
        rows.length.should.equal(stored.size);
        // Every acknowledged reading, sent again, is a replay: its state committed with it.
        const resend = [];
        for (let i = 0; i < acked.length; i += 50) {
          resend.push(...(await Promise.all(acked.slice(i, i + 50).map((a) => requestJson(`${backend.url}/api/devices/${encodeURIComponent(a.deviceid)}/readings`, 'POST', a.sent)))));
        }
        resend.filter((r) => r.status !== 400).length.should.equal(0);
        // And the devices carry on with fresh numbers (their counters resume past the reserved block).
        for (const d of sims) (await d.postReading()).status.should.equal(200);
      } finally {
        for (const d of sims) await d.stop();
        await backend.stop();
      }
    });
  });
});
