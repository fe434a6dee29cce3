'use strict';
require('should');
const { useRuntimeWithTempDir, helper, nodes, fixtureFlow, collect, redVersion } = require('../support/red');
const { startPostgres } = require('../support/postgres');

const storeNodes = [nodes.deviceStore, nodes.replayGuard, nodes.deviceRegistry];
const MAC = '5C:CF:7F:0A:0B:0C';
const PASSWORD = 'pg-Pa55word-never-shown';

describe('device-store with the PostgreSQL backend on Node-RED ' + redVersion(), function () {
  this.timeout(60000);
  useRuntimeWithTempDir();
  let pg;
  let url;
  before(async function () {
    pg = await startPostgres();
  });
  after(function () {
    pg?.destroy();
  });
  beforeEach(async function () {
    // (The throwaway server trusts loopback, so any password works; this one must never be shown.)
    url = (await pg.createDatabase('nodes')).replace('postgres@', `postgres:${PASSWORD}@`);
  });

  const load = async (props = {}, database = url) => {
    await helper.load(storeNodes, fixtureFlow('store', { store: { backend: 'postgresql', poolSize: 3, heartbeat: 300, ...props } }), { store: { database } });
    return helper.getNode('store');
  };
  async function call(action, deviceid, payload, extra = {}) {
    const pending = collect(['out'], 1, { errorFrom: 'registry' });
    helper.getNode('registry').receive({ action, deviceid, payload, ...extra });
    const msg = (await pending).out[0];
    return { statusCode: msg.statusCode, payload: msg.payload };
  }

  it('registers, guards, logs and lists through PostgreSQL; the node shows where, never the password', async function () {
    const store = await load();
    await store.store.ready();
    store.store.backend.should.equal('postgresql');
    store.file.should.equal(`postgresql://127.0.0.1:${pg.port}/${url.split('/').pop()}`);
    (await call('health')).should.eql({ statusCode: 200, payload: { status: 'OK', backend: 'postgresql' } });
    (await call('register', MAC, { ipaddr: '10.0.0.5', ssid: 'lab' })).statusCode.should.equal(201);
    const guard = helper.getNode('guard');
    for (const [seqn, expected] of [[1, 'accepted'], [1, 'rejected'], [2, 'accepted']]) {
      const pending = collect([expected], 1);
      guard.receive({ deviceid: MAC, payload: { SEQN: seqn } });
      await pending;
    }
    (await call('log', MAC, { SEQN: 2, data: { t: 20 } })).statusCode.should.equal(200);
    const list = await call('list', undefined, {});
    list.payload.map((d) => d.deviceid).should.eql([MAC]);
    (await pg.query(url, 'SELECT seqn FROM readings')).map((r) => Number(r.seqn)).should.eql([2]);
    // Nothing the runtime logged shows the password (the node's own lines name store.file, checked above).
    const logged = JSON.stringify(helper.log().args);
    logged.should.containEql('e2ee.store.opened');
    logged.should.not.containEql(PASSWORD);
  });

  it('health answers 503 while the database is down and 200 again once it is back, without a redeploy', async function () {
    const store = await load();
    await store.store.ready();
    pg.stop();
    try {
      const down = await call('health');
      down.statusCode.should.equal(503);
    } finally {
      pg.start();
    }
    let up;
    for (let i = 0; i < 50 && up?.statusCode !== 200; i++) {
      up = await call('health');
      if (up.statusCode !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    up.statusCode.should.equal(200);
  });

  it('says so when the backend is PostgreSQL but no connection string is set', async function () {
    const store = await load({}, '');
    await store.store.ready().should.be.rejectedWith(/no PostgreSQL connection string/);
    store.error.args.map((a) => a[0]).should.containEql('e2ee.store.no-connection');
  });
});
