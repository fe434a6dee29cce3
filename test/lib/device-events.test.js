'use strict';
/** The store's readings and device events (lib/registry/events): presence from contact, the sweep, the seed. */
require('should');
const lib = require('../../dist/nodes/lib');

const HEARTBEAT = 60_000;
const row = (deviceid, extra = {}) => ({ deviceid, name: '', lastseen: null, sleep: 0, data: {}, ...extra });

describe('device events', function () {
  let clock;
  let events;
  let got;
  beforeEach(function () {
    clock = Date.parse('2026-12-05T12:00:00Z');
    events = new lib.DeviceEvents({ heartbeatMs: HEARTBEAT, now: () => clock, sweepMs: 3_600_000 });
    got = [];
  });
  afterEach(function () {
    events.close();
  });

  it('tracks nothing and sends nothing while nobody listens', function () {
    events.tracking.should.be.false();
    events.contact(row('A'));
    events.reading({ deviceid: 'A', name: '', seqn: 1, data: {}, ts: '', transport: 'http' });
    (events.nameOf('A') === undefined).should.be.true();
    const off = events.onEvent((e) => got.push(e));
    events.tracking.should.be.true();
    events.sweep(clock + 10 * HEARTBEAT);
    got.should.eql([]);
    off();
    events.tracking.should.be.false();
  });

  it('online at the first contact only, offline once the heartbeat lapsed, online again at the next contact', function () {
    events.onEvent((e) => got.push(e));
    events.contact(row('A', { name: 'kitchen' }), 'mqtt');
    events.touch('A', clock + 1000).should.be.true();
    events.touch('B').should.be.false();
    events.sweep(clock + 1000 + HEARTBEAT);
    got.map((e) => e.event).should.eql(['online']);
    got[0].should.containDeep({ deviceid: 'A', name: 'kitchen', transport: 'mqtt' });
    events.sweep(clock + 1001 + HEARTBEAT);
    got.map((e) => e.event).should.eql(['online', 'offline']);
    got[1].lastseen.should.equal(new Date(clock + 1000).toISOString());
    events.contact(row('A', { name: 'kitchen' }));
    got.map((e) => e.event).should.eql(['online', 'offline', 'online']);
  });

  it('a sleeper lapses after two and a half periods of its interval, and a new interval applies at once', function () {
    events.onEvent((e) => got.push(e));
    events.contact(row('S', { sleep: 600 }));
    events.sweep(clock + 2.5 * 600_000);
    got.length.should.equal(1);
    events.changed(row('S', { sleep: 600, data: { interval: 60 }, name: 'garden' }));
    events.nameOf('S').should.equal('garden');
    events.sweep(clock + 151_000);
    got.map((e) => e.event).should.eql(['online', 'offline']);
  });

  it('registered, acknowledged, expired, rekeyed and revoked carry the name of a device online', function () {
    events.onEvent((e) => got.push(e));
    events.registered(row('A', { name: 'porch' }), true, 'http');
    events.acknowledged('A', 4);
    events.expired('A', 5);
    events.rekeyed('A', 1);
    events.revoked('A', 'porch');
    got.map((e) => e.event).should.eql(['registered', 'online', 'acknowledged', 'expired', 'rekeyed', 'revoked']);
    got[0].created.should.be.true();
    got[2].should.containDeep({ seqn: 4, name: 'porch' });
    got[3].seqn.should.equal(5);
    got[4].keyver.should.equal(1);
    // Revoked: no longer online, so no offline follows.
    events.sweep(clock + 10 * HEARTBEAT);
    got.length.should.equal(6);
  });

  it('the first subscriber seeds the devices online from the store, so a restart reports no one online anew', async function () {
    const seeded = new lib.DeviceEvents({
      heartbeatMs: HEARTBEAT,
      now: () => clock,
      sweepMs: 3_600_000,
      // Two pages, as the device store gives them.
      seed: async function* () {
        yield [row('A', { lastseen: new Date(clock - 1000).toISOString(), name: 'a' })];
        yield [row('B', { lastseen: new Date(clock - 2 * HEARTBEAT).toISOString() }), row('C')];
      },
    });
    try {
      seeded.onEvent((e) => got.push(e));
      await seeded.settled();
      seeded.touch('A', clock).should.be.true();
      seeded.nameOf('A').should.equal('a');
      seeded.contact(row('B'));
      got.map((e) => `${e.event} ${e.deviceid}`).should.eql(['online B']);
    } finally {
      seeded.close();
    }
  });

  it('readings go to reading listeners only, and unsubscribing twice is harmless', function () {
    const readings = [];
    const off = events.onReading((r) => readings.push(r));
    events.onEvent((e) => got.push(e));
    events.reading({ deviceid: 'A', name: 'x', seqn: 3, data: { a0: 1 }, ts: 't', transport: 'http' });
    readings.length.should.equal(1);
    got.length.should.equal(0);
    off();
    off();
    events.wantsReadings.should.be.false();
    events.tracking.should.be.true();
  });
});
