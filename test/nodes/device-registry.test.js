'use strict';
require('should');
const { useRuntimeWithTempDir, helper, nodes, fixtureFlow, collect, redVersion, catalogText } = require('../support/red');
const { querySqlite } = require('../support/tmp');

const storeNodes = [nodes.deviceStore, nodes.replayGuard, nodes.deviceRegistry];
const MAC = '5C:CF:7F:01:02:03';
const INJECTION = ["x'); DROP TABLE devices; --", "' OR '1'='1", 'Robert"); DELETE FROM readings;--'];

describe('device-registry on Node-RED ' + redVersion(), function () {
  this.timeout(20000);
  const dir = useRuntimeWithTempDir();
  beforeEach(async () => {
    await helper.load(storeNodes, fixtureFlow('store', { store: { path: dir().file('e2ee.sqlite'), heartbeat: 300 } }));
    await helper.getNode('store').store.ready();
  });

  /** One request through the registry: resolves with {statusCode, payload, msg}. */
  async function call(action, deviceid, payload, extra = {}) {
    const pending = collect(['out'], 1, { errorFrom: 'registry' });
    helper.getNode('registry').receive({ action, deviceid, payload, ...extra });
    const msg = (await pending).out[0];
    return { statusCode: msg.statusCode, payload: msg.payload, msg };
  }
  /** A decrypted reading of the device from `ip` (through aes-decrypt and the guard): where its pushes go. */
  const readingFrom = (deviceid, ip, SEQN = 1) => call('log', deviceid, { SEQN }, { e2ee: { authenticated: false }, req: { ip, headers: {} } });
  const text = (key) => catalogText(key);
  const dbRows = (sql, params) => querySqlite(dir().file('e2ee.sqlite'), sql, params);

  describe('register (POST /api/devices/:id)', function () {
    it('inserts a new device with cfgsn 1: 201 and the seed message', async function () {
      const r = await call('register', MAC, { ipaddr: '192.168.1.50', ssid: 'HomeWiFi' });
      r.statusCode.should.equal(201);
      r.payload.should.eql({ status: 'OK', message: 'e2ee.registry.registered', deviceid: MAC, cfgsn: 1 });
      text(r.payload.message).should.equal('Device Registered');
      (await dbRows('SELECT deviceid, ssid, ipaddr, cfgsn FROM devices')).should.eql([{ deviceid: MAC, ssid: 'HomeWiFi', ipaddr: '192.168.1.50', cfgsn: 1 }]);
    });
    it('a known device gets ipaddr, ssid and lastseen updated and its row back: 200', async function () {
      await call('register', MAC, { ipaddr: '192.168.1.50', ssid: 'HomeWiFi' });
      await call('update', MAC, { name: 'kitchen' });
      const first = (await dbRows('SELECT lastseen, datec FROM devices'))[0];
      await new Promise((r) => setTimeout(r, 5));
      // A name in a registration is ignored: the name is the operators'.
      const r = await call('register', MAC, { ipaddr: 'fe80::1', ssid: 'Other', name: 'hijacked' });
      r.statusCode.should.equal(200);
      Object.keys(r.payload).should.eql(['deviceid', 'name', 'lastseen', 'ssid', 'ipaddr', 'cfgsn', 'flags', 'data', 'datec', 'keyver', 'pendingkeyver', 'rxbuf', 'transport', 'connected', 'sleep']);
      r.payload.should.containEql({ deviceid: MAC, name: 'kitchen', ssid: 'Other', ipaddr: 'fe80::1', cfgsn: 1, flags: 0, data: {} });
      r.payload.datec.should.equal(first.datec);
      (r.payload.lastseen > first.lastseen).should.be.true();
    });
    it('a name is the operators\': a registration cannot set it, an update over 64 characters is refused', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's', name: 'from the network' });
      (await dbRows('SELECT name FROM devices')).should.eql([{ name: '' }]);
      const r = await call('update', MAC, { name: 'n'.repeat(65) });
      r.statusCode.should.equal(400);
      text(r.payload.message).should.equal(text('e2ee.registry.bad-name'));
    });
    it('caps the number of devices registration can create (e2ee.maxDevices): 403, known devices still re-register', async function () {
      await helper.unload();
      helper.settings({ e2ee: { maxDevices: 2 } });
      try {
        await helper.load(storeNodes, fixtureFlow('store', { store: { path: dir().file('cap.sqlite') } }));
        (await call('register', 'cap-1', { ipaddr: '10.0.0.1', ssid: 's' })).statusCode.should.equal(201);
        (await call('register', 'cap-2', { ipaddr: '10.0.0.2', ssid: 's' })).statusCode.should.equal(201);
        const full = await call('register', 'cap-3', { ipaddr: '10.0.0.3', ssid: 's' });
        full.statusCode.should.equal(403);
        text(full.payload.message).should.match(/maximum of __max__/);
        (await call('register', 'cap-1', { ipaddr: '10.0.0.9', ssid: 's' })).statusCode.should.equal(200);
        (await querySqlite(dir().file('cap.sqlite'), 'SELECT deviceid FROM devices ORDER BY deviceid')).map((r) => r.deviceid).should.eql(['cap-1', 'cap-2']);
      } finally {
        helper.settings({ e2ee: {} });
      }
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
      r.payload.should.eql({ cfgsn: 2, data: { interval: 30, led: true }, commands: [] });
      // (lastseen is deferred: it rides with the next batch, or commits on its own within a fraction of a second.)
      const end = Date.now() + 5000;
      while (!((await dbRows('SELECT lastseen FROM devices'))[0].lastseen > before)) {
        if (Date.now() > end) throw new Error('lastseen was not updated');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
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
      await helper.load(storeNodes, fixtureFlow('store', { store: { path: dir().file('hb.sqlite'), heartbeat: 1 } }));
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

  describe('operator token (requireToken)', function () {
    const TOKEN = 'op-token-7f3a9c';
    async function loadWithToken(token) {
      await helper.unload();
      await helper.load(storeNodes, fixtureFlow('store', { store: { path: dir().file('tok.sqlite') }, registry: { requireToken: true } }), token === undefined ? {} : { store: { token } });
      await helper.getNode('store').store.ready();
    }
    it('refuses a missing, malformed or wrong token with 401 and does nothing', async function () {
      await loadWithToken(TOKEN);
      for (const authorization of [undefined, '', TOKEN, `Basic ${TOKEN}`, 'Bearer wrong', `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`]) {
        const r = await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' }, { req: { headers: { authorization } } });
        r.statusCode.should.equal(401, String(authorization));
        r.msg.headers.should.eql({ 'WWW-Authenticate': 'Bearer' });
        r.payload.message.should.equal('e2ee.registry.unauthorized');
      }
      (await dbRows('SELECT count(*) AS n FROM devices')).should.eql([{ n: 0 }]);
      // dbRows reads e2ee.sqlite; check the token store's file instead.
      (await querySqlite(dir().file('tok.sqlite'), 'SELECT count(*) AS n FROM devices')).should.eql([{ n: 0 }]);
    });
    it('lets the right bearer token through', async function () {
      await loadWithToken(TOKEN);
      (await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' }, { req: { headers: { authorization: `Bearer ${TOKEN}` } } })).statusCode.should.equal(201);
    });
    it('with no token configured, refuses everyone', async function () {
      await loadWithToken(undefined);
      (await call('list', undefined, {}, { req: { headers: { authorization: 'Bearer ' } } })).statusCode.should.equal(401);
      (await call('list', undefined, {}, { req: { headers: { authorization: 'Bearer undefined' } } })).statusCode.should.equal(401);
    });
  });

  describe('commands', function () {
    it('allocates strictly increasing downlink SEQNs per device, persisted, queues, offers in the poll once', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's', cmdport: 8081 });
      (await readingFrom(MAC, '10.0.0.1')).statusCode.should.equal(200);
      const c1 = await call('command', MAC, { led: true });
      c1.statusCode.should.equal(202);
      c1.payload.should.eql({ cmd: { led: true }, SEQN: 1 });
      c1.msg.seqn.should.equal(1);
      const wire = { iv: 'AAAAAAAAAAAAAAAAAAAAAA==', data: 'BBBB', mac: 'CCCC' };
      const q = await call('queue-command', MAC, wire, { seqn: 1 });
      q.statusCode.should.equal(202);
      q.payload.should.containEql({ status: 'OK', seqn: 1 });
      q.msg.pushUrl.should.equal('http://10.0.0.1:8081/command');
      // Concurrent commands get distinct numbers.
      const pending = collect(['out'], 5, { errorFrom: 'registry' });
      for (let i = 0; i < 5; i++) helper.getNode('registry').receive({ action: 'command', deviceid: MAC, payload: { interval: i + 1 } });
      (await pending).out.map((m) => m.seqn).sort((a, b) => a - b).should.eql([2, 3, 4, 5, 6]);
      const poll = await call('get', MAC);
      poll.payload.commands.should.eql([wire]);
      (await call('get', MAC)).payload.commands.should.eql([]);
      (await querySqlite(dir().file('e2ee.sqlite'), 'SELECT seqn, via FROM commands')).should.eql([{ seqn: 1, via: 'poll' }]);
      // The counter survives a reload.
      await helper.unload();
      await helper.load(storeNodes, fixtureFlow('store', { store: { path: dir().file('e2ee.sqlite') } }));
      (await call('command', MAC, { led: false })).payload.SEQN.should.equal(7);
    });
    it('marks a pushed command delivered', async function () {
      await call('register', MAC, { ipaddr: 'fd00::2', ssid: 's' });
      await readingFrom(MAC, 'fd00::2');
      await call('command', MAC, { led: true });
      (await call('queue-command', MAC, { iv: 'x', data: 'y' }, { seqn: 1 })).msg.pushUrl.should.equal('http://[fd00::2]:80/command');
      (await call('command-delivered', MAC, undefined, { seqn: 1 })).statusCode.should.equal(200);
      (await call('get', MAC)).payload.commands.should.eql([]);
      (await querySqlite(dir().file('e2ee.sqlite'), 'SELECT via FROM commands')).should.eql([{ via: 'push' }]);
    });
    it('gives no push URL for a link-local, loopback or public address (the command waits for the poll)', async function () {
      for (const [i, ipaddr] of ['fe80::2', '127.0.0.1', '169.254.169.254', '8.8.8.8'].entries()) {
        const id = `${MAC.slice(0, -1)}${i}`;
        await call('register', id, { ipaddr, ssid: 's' });
        await readingFrom(id, ipaddr);
        await call('command', id, { led: true });
        const queued = await call('queue-command', id, { iv: 'x', data: 'y' }, { seqn: 1 });
        queued.statusCode.should.equal(202);
        queued.msg.should.not.have.property('pushUrl');
        (await call('get', id)).payload.commands.should.eql([{ iv: 'x', data: 'y' }]);
      }
    });
    it('pushes only to where the decrypted uplinks of the device come from: not before one, never to the address it claims', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.99', ssid: 's', cmdport: 8081 });
      await call('command', MAC, { led: true });
      (await call('queue-command', MAC, { iv: 'x', data: 'y' }, { seqn: 1 })).msg.should.not.have.property('pushUrl');
      await readingFrom(MAC, '::ffff:10.0.0.5');
      await call('command', MAC, { led: false });
      (await call('get', MAC)).payload.commands.should.have.length(1);
      (await call('queue-command', MAC, { iv: 'x', data: 'z' }, { seqn: 2 })).msg.pushUrl.should.equal('http://10.0.0.5:8081/command');
    });
    it('validates commands and targets', async function () {
      await call('register', MAC, { ipaddr: '10.0.0.1', ssid: 's' });
      for (const body of [{}, [], 'led on', { big: 'x'.repeat(1100) }]) (await call('command', MAC, body)).statusCode.should.equal(400);
      (await call('command', 'ghost', { led: 1 })).statusCode.should.equal(404);
      (await call('queue-command', MAC, { iv: 'x' }, { seqn: 'x' })).statusCode.should.equal(400);
      (await call('register', 'p', { ipaddr: '10.0.0.1', ssid: 's', cmdport: 70000 })).statusCode.should.equal(400);
    });
  });

  it('SQL-injection strings as names, ssid and data are stored verbatim and do no harm', async function () {
    for (const [i, evil] of INJECTION.entries()) {
      (await call('register', `inj${i}`, { ipaddr: '10.0.0.1', ssid: evil.slice(0, 32) })).statusCode.should.equal(201);
      (await call('update', `inj${i}`, { name: evil, data: { [evil]: evil } })).statusCode.should.equal(200);
      (await call('log', `inj${i}`, { SEQN: 1, note: evil })).statusCode.should.equal(200);
    }
    const list = (await call('list', undefined, {})).payload;
    list.map((d) => d.name).should.eql(INJECTION);
    list.map((d) => d.data[d.name]).should.eql(INJECTION);
    (await call('readings', 'inj1', {})).payload[0].payload.note.should.equal(INJECTION[1]);
    (await dbRows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")).map((r) => r.name).should.eql(['commands', 'devices', 'downlink_counters', 'provisioned', 'readings', 'replay_state', 'revoked', 'schema_version']);
  });
});
