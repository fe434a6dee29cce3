'use strict';
/** device-events: readings and device events out of the store, as the registry, the guard and expiry report them. */
require('should');
const { useRuntimeWithTempDir, helper, nodes, fixtureFlow, collect, redVersion } = require('../support/red');

const MAC = '5C:CF:7F:0E:0E:01';

describe('device-events on Node-RED ' + redVersion(), function () {
  this.timeout(20000);
  const dir = useRuntimeWithTempDir();

  /** The store fixture with a readings node and an events node beside it. */
  async function load(storeProps = {}) {
    const flow = fixtureFlow('store', { store: { path: dir().file('e2ee.sqlite'), heartbeat: 300, ...storeProps } });
    flow.push(
      // (Ids that are no property's value: Node-RED takes a string equal to a node id for a reference to it.)
      { id: 'ev-readings', type: 'device-events', store: 'store', source: 'readings', wires: [['readings-out']] },
      { id: 'ev-events', type: 'device-events', store: 'store', source: 'events', wires: [['events-out']] },
      { id: 'readings-out', type: 'helper' },
      { id: 'events-out', type: 'helper' },
    );
    await helper.load([nodes.deviceStore, nodes.replayGuard, nodes.deviceRegistry, nodes.deviceEvents], flow);
    const store = helper.getNode('store');
    await store.store.ready();
    await store.events.settled();
    return store;
  }
  async function call(action, deviceid, payload, extra = {}) {
    const pending = collect(['out'], 1, { errorFrom: 'registry' });
    helper.getNode('registry').receive({ action, deviceid, payload, ...extra });
    return (await pending).out[0];
  }

  it('a reading leaves as its own message {deviceid, name, seqn, data, ts, transport}, after registered and online', async function () {
    await load();
    const events = collect(['events-out'], 2);
    (await call('register', MAC, { ipaddr: '10.0.0.7', ssid: 'lab' })).statusCode.should.equal(201);
    (await call('update', MAC, { name: 'porch' })).statusCode.should.equal(200);
    const readings = collect(['readings-out'], 1);
    const sent = await call('log', MAC, { SEQN: 3, data: { a0: 17 }, ack: 0 }, { req: { headers: {} } });
    sent.statusCode.should.equal(200);
    const [reading] = (await readings)['readings-out'];
    reading.topic.should.equal(MAC);
    reading.should.not.have.property('req');
    reading.payload.should.containEql({ deviceid: MAC, name: 'porch', seqn: 3, data: { a0: 17 }, transport: 'http' });
    Number.isNaN(Date.parse(reading.payload.ts)).should.be.false();
    const got = (await events)['events-out'];
    got.map((m) => m.topic).should.eql(['registered', 'online']);
    got[0].payload.should.containEql({ event: 'registered', deviceid: MAC, created: true });
  });

  it('revoked when an operator removes the device; expired when a command outlives the store\'s lifetime', async function () {
    const store = await load({ commandTtl: '1s' });
    await call('register', MAC, { ipaddr: '10.0.0.7', ssid: 'lab' });
    // A command queued 5 s ago: the next expiry run (at least once a second with a 1 s lifetime) expires it.
    const seqn = await store.store.nextCommandSeq(MAC);
    await store.store.queueCommand(MAC, seqn, { iv: 'x', data: 'y' }, Date.now() - 5000);
    const expired = collect(['events-out'], 1, { timeoutMs: 8000 });
    const [e] = (await expired)['events-out'].filter((m) => m.topic === 'expired');
    e.payload.should.containEql({ event: 'expired', deviceid: MAC, seqn });
    const revoked = collect(['events-out'], 1);
    (await call('remove', MAC, {})).statusCode.should.equal(200);
    (await revoked)['events-out'][0].payload.should.containEql({ event: 'revoked', deviceid: MAC });
  });

  it('rekeyed when the first message under a rekey\'s pending key version passes the replay guard', async function () {
    const store = await load();
    await call('register', MAC, { ipaddr: '10.0.0.7', ssid: 'lab' });
    (await store.store.beginRekey(MAC)).should.eql({ keyver: 0, pending: 1 });
    const pending = collect(['events-out', 'accepted'], 2);
    helper.getNode('guard').receive({ deviceid: MAC, payload: { SEQN: 9 }, e2ee: { authenticated: true, keyver: 1 } });
    const got = await pending;
    got.accepted.length.should.equal(1);
    got['events-out'][0].payload.should.containEql({ event: 'rekeyed', deviceid: MAC, keyver: 1 });
  });

  it('an acknowledgement that settles a command is an event; one that repeats is not', async function () {
    await load();
    await call('register', MAC, { ipaddr: '10.0.0.7', ssid: 'lab' });
    const store = helper.getNode('store');
    const seqn = await store.store.nextCommandSeq(MAC);
    await store.store.queueCommand(MAC, seqn, { iv: 'x', data: 'y' });
    const acked = collect(['events-out'], 1);
    // (sealed: the registry applies the ack a sealed reading carries; the device is online since it registered)
    await call('log', MAC, { SEQN: 1, ack: seqn }, { e2ee: { authenticated: false } });
    const got = (await acked)['events-out'];
    got.map((m) => m.topic).should.eql(['acknowledged']);
    got[0].payload.seqn.should.equal(seqn);
    const more = collect(['events-out'], 1, { timeoutMs: 500 });
    await call('log', MAC, { SEQN: 2, ack: seqn }, { e2ee: { authenticated: false } });
    await more.then(() => { throw new Error('a repeated ack was reported'); }, () => undefined);
  });

  it('without a store it says so on the node, and sends nothing', async function () {
    await helper.load([nodes.deviceEvents], [{ id: 'lonely', type: 'device-events', store: '', source: 'events', wires: [[]] }]);
    const errors = helper.log().args.map((a) => a[0]).filter((e) => e.level === helper.log().ERROR && e.id === 'lonely');
    errors.map((e) => e.msg).should.containEql('e2ee.errors.no-store');
  });
});
