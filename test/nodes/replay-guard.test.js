'use strict';
require('should');
const { useRuntimeWithTempDir, helper, nodes, fixtureFlow, collect, redVersion } = require('../support/red');
const { querySqlite } = require('../support/tmp');

const storeNodes = [nodes.deviceStore, nodes.replayGuard, nodes.deviceRegistry];

describe('replay-guard on Node-RED ' + redVersion(), function () {
  this.timeout(20000);
  const dir = useRuntimeWithTempDir();

  const load = (guardProps = {}) => helper.load(storeNodes, fixtureFlow('store', { store: { path: dir().file('e2ee.sqlite') }, guard: guardProps }));


  async function decide(msg) {
    const pending = collect(['accepted', 'rejected'], 1, { errorFrom: 'guard' });
    helper.getNode('guard').receive(msg);
    const got = await pending;
    return got.accepted.length ? 'ok' : got.rejected[0].rejected.reason;
  }
  const seqs = async (deviceid, list) => {
    const out = [];
    for (const SEQN of list) out.push(await decide({ deviceid, payload: { SEQN } }));
    return out;
  };

  it('window 0: strictly increasing per device, devices independent', async function () {
    await load();
    (await seqs('a', [1, 2, 2, 1, 3])).should.eql(['ok', 'ok', 'replay', 'stale', 'ok']);
    (await seqs('b', [1, 2])).should.eql(['ok', 'ok']);
  });

  it('window N: out-of-order numbers inside the window pass exactly once', async function () {
    await load({ window: 8 });
    (await seqs('a', [10, 7, 9, 7, 2, 11, 10])).should.eql(['ok', 'ok', 'ok', 'replay', 'stale', 'ok', 'replay']);
  });

  it('validates the sequence number and the device id', async function () {
    await load();
    (await decide({ deviceid: 'a', payload: {} })).should.equal('missing-seq');
    (await decide({ deviceid: 'a', payload: 'just text' })).should.equal('missing-seq');
    for (const SEQN of [-1, 1.5, 'x', '1e3', [], {}]) (await decide({ deviceid: 'a', payload: { SEQN } })).should.equal('bad-seq');
    (await decide({ payload: { SEQN: 1 } })).should.equal('missing-device');
    (await decide({ deviceid: 'a', payload: { SEQN: '5' } })).should.equal('ok');
    (await decide({ deviceid: 'a', payload: { SEQN: 5 } })).should.equal('replay');
  });

  it('reads the device id and sequence from configured properties', async function () {
    await load({ deviceProperty: 'req.params.deviceid', seqProperty: 'payload.data.n' });
    (await decide({ req: { params: { deviceid: 'x' } }, payload: { data: { n: 4 } } })).should.equal('ok');
    (await decide({ req: { params: { deviceid: 'x' } }, payload: { data: { n: 4 } } })).should.equal('replay');
  });

  it('100 identical messages at once: exactly one is accepted', async function () {
    await load({ window: 64 });
    const guard = helper.getNode('guard');
    for (const deviceid of ['fresh', 'warm']) {
      if (deviceid === 'warm') (await decide({ deviceid, payload: { SEQN: 1 } })).should.equal('ok');
      const pending = collect(['accepted', 'rejected'], 100, { errorFrom: 'guard' });
      for (let i = 0; i < 100; i++) guard.receive({ deviceid, payload: { SEQN: 50 } });
      const got = await pending;
      got.accepted.length.should.equal(1, deviceid);
      got.rejected.length.should.equal(99);
      got.rejected.every((m) => m.rejected.reason === 'replay').should.be.true();
    }
  });

  it('an accepted message leaves only after its state is on disk', async function () {
    await load();
    const pending = collect(['accepted'], 1);
    helper.getNode('guard').receive({ deviceid: 'disk', payload: { SEQN: 41 } });
    await pending;
    const rows = await querySqlite(dir().file('e2ee.sqlite'), 'SELECT top FROM replay_state WHERE deviceid = ?', ['disk']);
    rows.should.eql([{ top: 41 }]);
  });

  it('persist with-next-write: the message leaves at once; the state commits with the device\'s reading', async function () {
    await load({ persist: 'with-next-write' });
    const registry = helper.getNode('registry');
    const reg = collect(['out'], 1);
    registry.receive({ action: 'register', deviceid: 'fused', payload: { ipaddr: '192.0.2.8', ssid: 'lab' } });
    (await reg).out[0].statusCode.should.equal(201);
    const pending = collect(['accepted'], 1);
    helper.getNode('guard').receive({ deviceid: 'fused', payload: { SEQN: 7 } });
    await pending;
    const state = () => querySqlite(dir().file('e2ee.sqlite'), 'SELECT top FROM replay_state WHERE deviceid = ?', ['fused']);
    (await state()).should.eql([]);
    (await seqs('fused', [7])).should.eql(['replay']);
    const logged = collect(['out'], 1);
    registry.receive({ action: 'log', deviceid: 'fused', payload: { SEQN: 7 } });
    (await logged).out[0].statusCode.should.equal(200);
    (await state()).should.eql([{ top: 7 }]);
    (await querySqlite(dir().file('e2ee.sqlite'), 'SELECT seqn FROM readings WHERE deviceid = ?', ['fused'])).should.eql([{ seqn: 7 }]);
  });

  it('persists across an unload and reload of the flow', async function () {
    await load({ window: 4 });
    (await seqs('p', [5, 3])).should.eql(['ok', 'ok']);
    await helper.unload();
    await load({ window: 4 });
    (await seqs('p', [5, 3, 4, 6])).should.eql(['replay', 'replay', 'ok', 'ok']);
  });

  it('an operator reset (device-registry action reset) unlocks a reflashed device, and is logged', async function () {
    await load();
    const registry = helper.getNode('registry');
    const reg = collect(['out'], 1);
    registry.receive({ action: 'register', deviceid: 'flashed', payload: { ipaddr: '192.0.2.7', ssid: 'lab' } });
    (await reg).out[0].statusCode.should.equal(201);
    (await seqs('flashed', [900, 1])).should.eql(['ok', 'stale']);
    const reset = collect(['out'], 1, { errorFrom: 'registry' });
    registry.receive({ action: 'reset', deviceid: 'flashed', payload: {} });
    (await reset).out[0].statusCode.should.equal(200);
    registry.warn.lastCall.args[0].should.match(/audit-reset|reset/);
    (await seqs('flashed', [1, 1, 2])).should.eql(['ok', 'replay', 'ok']);
    // With a floor: only numbers from 100 on.
    const floor = collect(['out'], 1);
    registry.receive({ action: 'reset', deviceid: 'flashed', payload: { from: 100 } });
    await floor;
    (await seqs('flashed', [98, 99, 100])).should.eql(['stale', 'replay', 'ok']);
  });

  it('a message cannot reset a counter: reset-looking fields are ignored by the guard', async function () {
    await load();
    (await seqs('m', [10])).should.eql(['ok']);
    (await decide({ deviceid: 'm', action: 'reset', reset: true, payload: { SEQN: 1, reset: true } })).should.equal('stale');
  });

  it('reports a missing store as an error, sends nothing', async function () {
    const flow = fixtureFlow('store', { store: { path: dir().file('x.sqlite') }, guard: { store: 'nope' } });
    await helper.load(storeNodes, flow);
    const guard = helper.getNode('guard');
    const err = new Promise((resolve) => guard.on('call:error', (c) => resolve(String(c.args[0].message || c.args[0]))));
    guard.receive({ deviceid: 'a', payload: { SEQN: 1 } });
    (await err).should.match(/no-store/);
  });
});
