'use strict';
require('should');
const { helper, nodes, fixtureFlow, collect, redVersion, catalogText } = require('../support/red');
const { tempDir, querySqlite } = require('../support/tmp');

const storeNodes = [nodes.deviceStore, nodes.replayGuard, nodes.deviceRegistry];
const MAC = '5C:CF:7F:01:02:03';
const INJECTION = ["x'); DROP TABLE devices; --", "' OR '1'='1", 'Robert"); DELETE FROM readings;--'];

describe('device-registry on Node-RED ' + redVersion(), function () {
  this.timeout(20000);
  let tmp;
  before(function (done) { helper.startServer(done); });
  after(function (done) { helper.stopServer(done); });
  beforeEach(async () => {
    tmp = tempDir();
    await helper.load(storeNodes, fixtureFlow('store', { store: { path: tmp.file('e2ee.sqlite'), heartbeat: 300 } }));
    await helper.getNode('store').store.ready();
  });
  afterEach(async () => {
    await helper.unload();
    tmp.cleanup();
  });

  /** One request through the registry: resolves with {statusCode, payload, msg}. */
  async function call(action, deviceid, payload, extra = {}) {
    const pending = collect(['out'], 1, { errorFrom: 'registry' });
    helper.getNode('registry').receive({ action, deviceid, payload, ...extra });
    const msg = (await pending).out[0];
    return { statusCode: msg.statusCode, payload: msg.payload, msg };
  }
  const text = (key) => catalogText(key);
  const dbRows = (sql, params) => querySqlite(tmp.file('e2ee.sqlite'), sql, params);

  describe('register (POST /api/devices/:id)', function () {
    it('inserts a new device with cfgsn 1: 201 and the seed message', async function () {
      const r = await call('register', MAC, { ipaddr: '192.168.1.50', ssid: 'HomeWiFi' });
      r.statusCode.should.equal(201);
      r.payload.should.eql({ status: 'OK', message: 'e2ee.registry.registered', deviceid: MAC, cfgsn: 1 });
      text(r.payload.message).should.equal('Device Registered');
      (await dbRows('SELECT deviceid, ssid, ipaddr, cfgsn FROM devices')).should.eql([{ deviceid: MAC, ssid: 'HomeWiFi', ipaddr: '192.168.1.50', cfgsn: 1 }]);
    });
    it('a known device gets ipaddr, ssid and lastseen updated and its row back: 200', async function () {
      await call('register', MAC, { ipaddr: '192.168.1.50', ssid: 'HomeWiFi', name: 'kitchen' });
      const first = (await dbRows('SELECT lastseen, datec FROM devices'))[0];
      await new Promise((r) => setTimeout(r, 5));
      const r = await call('register', MAC, { ipaddr: 'fe80::1', ssid: 'Other' });
      r.statusCode.should.equal(200);
      Object.keys(r.payload).should.eql(['deviceid', 'name', 'lastseen', 'ssid', 'ipaddr', 'cfgsn', 'flags', 'data', 'datec']);
      r.payload.should.containEql({ deviceid: MAC, name: 'kitchen', ssid: 'Other', ipaddr: 'fe80::1', cfgsn: 1, flags: 0, data: {} });
      r.payload.datec.should.equal(first.datec);
      (r.payload.lastseen > first.lastseen).should.be.true();
    });
    it('takes the device id from msg.req.params.deviceid (http in)', async function () {
      const r = await call('register', undefined, { ipaddr: '10.0.0.9', ssid: 's' }, { req: { params: { deviceid: 'AA:BB' } } });
      r.statusCode.should.equal(201);
      r.payload.deviceid.should.equal('AA:BB');
    });
    it('concurrent first registrations of one device give exactly one 201', async function () {
      const pending = collect(['out'], 10, { errorFrom: 'registry' });
      for (let i = 0; i < 10; i++) helper.getNode('registry').receive({ action: 'register', deviceid: 'race', payload: { ipaddr: '10.0.0.1', ssid: 's' } });
      const codes = (await pending).out.map((m) => m.statusCode).sort();
      codes.should.eql([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    });
  });

  describe('validation: 400 with a clear message, nothing written', function () {
    const cases = [
      ['empty id', '', { ipaddr: '10.0.0.1', ssid: 's' }, 'bad-deviceid'],
      ['id too long', 'a'.repeat(65), { ipaddr: '10.0.0.1', ssid: 's' }, 'bad-deviceid'],
      ['id with slash', 'a/b', { ipaddr: '10.0.0.1', ssid: 's' }, 'bad-deviceid'],
      ['id injection', INJECTION[0], { ipaddr: '10.0.0.1', ssid: 's' }, 'bad-deviceid'],
      ['ipaddr', 'ok', { ipaddr: '999.1.1.1', ssid: 's' }, 'bad-ipaddr'],
      ['ipaddr host name', 'ok', { ipaddr: 'example', ssid: 's' }, 'bad-ipaddr'],
      ['ssid 33 bytes', 'ok', { ipaddr: '10.0.0.1', ssid: 'x'.repeat(33) }, 'bad-ssid'],
      ['ssid multibyte over 32 bytes', 'ok', { ipaddr: '10.0.0.1', ssid: 'é'.repeat(17) }, 'bad-ssid'],
      ['name 65 chars', 'ok', { ipaddr: '10.0.0.1', ssid: 's', name: 'n'.repeat(65) }, 'bad-name'],
      ['body not an object', 'ok', 'text', 'bad-body'],
    ];
    for (const [name, id, body, code] of cases) {
      it(`register: ${name}`, async function () {
        const r = await call('register', id, body);
        r.statusCode.should.equal(400);
        r.payload.status.should.equal('NOK');
        r.payload.message.should.equal(`e2ee.registry.${code}`);
        text(r.payload.message).length.should.be.above(10);
        (await dbRows('SELECT count(*) AS n FROM devices'))[0].n.should.equal(0);
      });
    }
    it('update: data must be a JSON object of at most 16 KiB; flags a non-negative integer', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' });
      for (const [body, code] of [[{ data: [1] }, 'bad-data'], [{ data: 'x' }, 'bad-data'], [{ data: { big: 'x'.repeat(16 * 1024) } }, 'bad-data'], [{ flags: -1 }, 'bad-flags'], [{}, 'empty-update']]) {
        const r = await call('update', MAC, body);
        r.statusCode.should.equal(400);
        r.payload.message.should.equal(`e2ee.registry.${code}`);
      }
      (await dbRows('SELECT cfgsn, data FROM devices'))[0].should.eql({ cfgsn: 1, data: '{}' });
    });
    it('an unknown action is a 400', async function () {
      (await call('drop', MAC, {})).statusCode.should.equal(400);
    });
  });

  describe('get (the config poll)', function () {
    it('returns {cfgsn, data} and updates lastseen', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' });
      await call('update', MAC, { data: { interval: 30, led: true } });
      const before = (await dbRows('SELECT lastseen FROM devices'))[0].lastseen;
      await new Promise((r) => setTimeout(r, 5));
      const r = await call('get', MAC);
      r.statusCode.should.equal(200);
      r.payload.should.eql({ cfgsn: 2, data: { interval: 30, led: true } });
      ((await dbRows('SELECT lastseen FROM devices'))[0].lastseen > before).should.be.true();
    });
    it('an unknown device gets 404 and the seed message', async function () {
      const r = await call('get', 'nobody');
      r.statusCode.should.equal(404);
      r.payload.should.eql({ status: 'NOK', message: 'e2ee.registry.not-registered' });
      text(r.payload.message).should.equal('Device NOT Registered');
    });
  });

  describe('update', function () {
    it('bumps cfgsn when data changes, not for name or flags or unchanged data', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' });
      (await call('update', MAC, { name: 'garage' })).payload.cfgsn.should.equal(1);
      (await call('update', MAC, { flags: 3 })).payload.should.containEql({ cfgsn: 1, flags: 3, name: 'garage' });
      (await call('update', MAC, { data: { interval: 10 } })).payload.cfgsn.should.equal(2);
      (await call('update', MAC, { data: { interval: 10 } })).payload.cfgsn.should.equal(2);
      const r = await call('update', MAC, { data: { interval: 20 }, name: 'shed' });
      r.payload.should.containEql({ cfgsn: 3, name: 'shed', data: { interval: 20 } });
    });
    it('unknown device: 404', async function () {
      (await call('update', 'ghost', { name: 'x' })).statusCode.should.equal(404);
    });
  });

  describe('list', function () {
    it('returns rows with an online flag, limit/offset and the total', async function () {
      for (let i = 0; i < 5; i++) await call('register', `dev${i}`, { ipaddr: `10.0.0.${i + 1}`, ssid: 's' });
      const all = await call('list', undefined, {});
      all.statusCode.should.equal(200);
      all.payload.length.should.equal(5);
      all.msg.total.should.equal(5);
      all.payload.every((d) => d.online === true).should.be.true();
      const page = await call('list', undefined, { limit: '2', offset: '3' });
      page.payload.map((d) => d.deviceid).should.eql(['dev3', 'dev4']);
      (await call('list', undefined, { limit: -1 })).statusCode.should.equal(400);
    });
    it('online follows the store heartbeat timeout', async function () {
      await helper.unload();
      await helper.load(storeNodes, fixtureFlow('store', { store: { path: tmp.file('hb.sqlite'), heartbeat: 1 } }));
      await call('register', 'hb', { ipaddr: '10.0.0.1', ssid: 's' });
      (await call('list', undefined, {})).payload[0].online.should.be.true();
      await new Promise((r) => setTimeout(r, 1200));
      (await call('list', undefined, {})).payload[0].online.should.be.false();
      await call('get', 'hb');
      (await call('list', undefined, {})).payload[0].online.should.be.true();
    });
  });

  describe('log and readings', function () {
    it('stores the payload as a reading with its SEQN, newest first, with limit and since', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' });
      for (let i = 1; i <= 5; i++) {
        const r = await call('log', MAC, { data: { a0: i * 100 }, SEQN: i });
        r.statusCode.should.equal(200);
        r.payload.should.eql({ status: 'OK' });
      }
      const r = await call('readings', MAC, { limit: '3' });
      r.payload.map((x) => x.seqn).should.eql([5, 4, 3]);
      r.payload[0].payload.should.eql({ data: { a0: 500 }, SEQN: 5 });
      (await call('readings', MAC, { since: new Date(Date.now() + 60000).toISOString() })).payload.should.eql([]);
      (await call('readings', MAC, { since: 'yesterday-ish' })).statusCode.should.equal(400);
      (await call('readings', MAC, { limit: 5000 })).payload.length.should.equal(5);
    });
    it('readings default to 100 and cap at 1000', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' });
      const pending = collect(['out'], 1100, { errorFrom: 'registry' });
      for (let i = 0; i < 1100; i++) helper.getNode('registry').receive({ action: 'log', deviceid: MAC, payload: { SEQN: i } });
      await pending;
      (await call('readings', MAC, {})).payload.length.should.equal(100);
      (await call('readings', MAC, { limit: 1000000 })).payload.length.should.equal(1000);
    });
    it('a reading for an unknown device: 404, nothing stored', async function () {
      (await call('log', 'stranger', { SEQN: 1 })).statusCode.should.equal(404);
      (await dbRows('SELECT count(*) AS n FROM readings'))[0].n.should.equal(0);
    });
  });

  describe('remove', function () {
    it('deletes the device and its readings, keeps the replay state, and is logged', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' });
      await call('log', MAC, { SEQN: 1 });
      const r = await call('remove', MAC);
      r.statusCode.should.equal(200);
      helper.getNode('registry').warn.lastCall.args[0].should.match(/audit-removed/);
      (await dbRows('SELECT count(*) AS n FROM devices'))[0].n.should.equal(0);
      (await dbRows('SELECT count(*) AS n FROM readings'))[0].n.should.equal(0);
      (await call('remove', MAC)).statusCode.should.equal(404);
    });
  });

  it('SQL-injection strings as names, ssid and data are stored verbatim and do no harm', async function () {
    for (const [i, evil] of INJECTION.entries()) {
      (await call('register', `inj${i}`, { ipaddr: '10.0.0.1', ssid: evil.slice(0, 32), name: evil })).statusCode.should.equal(201);
      (await call('update', `inj${i}`, { data: { [evil]: evil } })).statusCode.should.equal(200);
      (await call('log', `inj${i}`, { SEQN: 1, note: evil })).statusCode.should.equal(200);
    }
    const list = (await call('list', undefined, {})).payload;
    list.map((d) => d.name).should.eql(INJECTION);
    list.map((d) => d.data[d.name]).should.eql(INJECTION);
    (await call('readings', 'inj1', {})).payload[0].payload.note.should.equal(INJECTION[1]);
    (await dbRows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")).map((r) => r.name).should.eql(['devices', 'readings', 'replay_state', 'schema_version']);
  });
});
