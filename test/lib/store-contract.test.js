'use strict';
const should = require('should');
const lib = require('../../dist/nodes/lib');
const { tempDir, querySqlite } = require('../support/tmp');
const { startPostgres } = require('../support/postgres');

/**
 * The DeviceStore contract: the same tests, unchanged, against every backend. A backend is a factory of
 * "places" (a SQLite file, a PostgreSQL database); each place opens stores on it and counts rows as an outside
 * observer would, through a connection of its own.
 */
const backends = [
  {
    name: 'sqlite',
    async setup() {},
    async teardown() {},
    async place() {
      const tmp = tempDir('esp-e2ee-contract-');
      const file = tmp.file('store.sqlite');
      return {
        open: (options = {}) => new lib.SqliteStore({ file, ...options }),
        count: async (table) => (await querySqlite(file, `SELECT count(*) AS n FROM ${table}`))[0].n,
        cleanup: () => tmp.cleanup(),
      };
    },
  },
  {
    name: 'postgresql',
    cluster: undefined,
    async setup() {
      this.cluster = await startPostgres();
    },
    async teardown() {
      this.cluster?.destroy();
    },
    async place() {
      const url = await this.cluster.createDatabase('contract');
      return {
        open: (options = {}) => new lib.PostgresStore({ connectionString: url, poolSize: 4, ...options }),
        count: async (table) => Number((await this.cluster.query(url, `SELECT count(*) AS n FROM ${table}`))[0].n),
        cleanup: () => undefined,
      };
    },
  },
];

for (const backend of backends) {
  describe(`DeviceStore contract: ${backend.name}`, function () {
    this.timeout(30000);
    let place;
    let store;
    before(async function () {
      await backend.setup();
    });
    after(async function () {
      await backend.teardown();
    });
    beforeEach(async function () {
      place = await backend.place();
      store = place.open();
      await store.ready();
    });
    afterEach(async function () {
      await store.close();
      place.cleanup();
    });
    const reopen = async (options) => {
      await store.close();
      store = place.open(options);
      await store.ready();
    };
    const reg = (deviceid, extra = {}) => store.register({ deviceid, ipaddr: '10.0.0.1', ssid: 'lab', ...extra });

    it('names its backend, and refuses calls once closed', async function () {
      store.backend.should.equal(backend.name);
      await store.close();
      await store.logReading('x', 1, {}).should.be.rejectedWith(/closed/);
      await store.checkReplay('x', 1, 0).should.be.rejectedWith(/closed/);
      store = place.open();
    });

    it('the source of the latest authenticated uplink: none before, the newest after, gone with the device; unknown ids are not recorded', async function () {
      await reg('aa');
      should(await store.seenAddress('aa')).equal(null);
      await store.noteSource('aa', '10.0.0.5');
      await store.noteSource('aa', '10.0.0.5');
      (await store.seenAddress('aa')).should.equal('10.0.0.5');
      await store.noteSource('aa', '192.168.1.7');
      (await store.seenAddress('aa')).should.equal('192.168.1.7');
      // The claimed address is another thing.
      (await store.commandTarget('aa')).should.containEql({ ipaddr: '10.0.0.1' });
      await store.noteSource('zz', '10.0.0.6');
      should(await store.seenAddress('zz')).equal(null);
      (await store.remove('aa')).should.be.true();
      await reg('aa');
      should(await store.seenAddress('aa')).equal(null);
    });

    it('the transport and the broker connection: MQTT marks it connected; the status topic sets only that flag, never for an unknown id; HTTP clears it', async function () {
      await reg('aa');
      const before = await store.get('aa');
      before.should.containEql({ transport: 'http', connected: null });
      await store.noteTransport('aa', 'mqtt');
      (await store.get('aa')).should.containEql({ transport: 'mqtt', connected: true });
      (await store.noteStatus('aa', false)).should.be.true();
      const after = await store.get('aa');
      after.connected.should.be.false();
      const { connected: _a, transport: _t, ...restBefore } = before;
      const { connected: _b, transport: _u, ...restAfter } = after;
      restAfter.should.eql(restBefore);
      (await store.noteStatus('zz', true)).should.be.false();
      should(await store.get('zz')).be.undefined();
      await store.noteTransport('aa', 'http');
      (await store.get('aa')).should.containEql({ transport: 'http', connected: null });
    });

    it('register: a sleeper\'s declared sleep is kept, and a registration without one makes the device always on again', async function () {
      (await reg('sl', { sleep: 900 })).device.sleep.should.equal(900);
      (await store.get('sl')).sleep.should.equal(900);
      (await store.list({ limit: 10, offset: 0 })).devices.find((d) => d.deviceid === 'sl').sleep.should.equal(900);
      (await store.commandTarget('sl')).sleep.should.equal(900);  // (not pushed to: the next wake's answer offers it)
      (await reg('sl')).device.sleep.should.equal(0);
    });

    it('register: creates with cfgsn 1, then refreshes the address and keeps the name; concurrent first registrations give one creation', async function () {
      const first = await reg('aa', { cmdport: 8080 });
      first.created.should.be.true();
      first.device.should.containEql({ deviceid: 'aa', cfgsn: 1, ipaddr: '10.0.0.1', ssid: 'lab', name: '', keyver: 0, pendingkeyver: null, rxbuf: 0 });
      await store.update('aa', { name: 'kitchen' });
      const again = await store.register({ deviceid: 'aa', ipaddr: '10.0.0.9', ssid: 'other', rxbuf: 1024 });
      again.created.should.be.false();
      again.device.should.containEql({ name: 'kitchen', ipaddr: '10.0.0.9', ssid: 'other', rxbuf: 1024 });
      (await store.commandTarget('aa')).should.eql({ ipaddr: '10.0.0.9', cmdport: 80, transport: 'http', sleep: 0 });
      const results = await Promise.all(Array.from({ length: 20 }, () => reg('bb')));
      results.filter((r) => r.created).length.should.equal(1);
      (await place.count('devices')).should.equal(2);
    });

    it('register: the device cap holds under concurrency, and known devices may always register again', async function () {
      const capped = await Promise.all(Array.from({ length: 12 }, (_, i) => store.register({ deviceid: `c${i}`, ipaddr: '10.0.0.1', ssid: 'x' }, Date.now(), 5)));
      capped.filter((r) => r.created).length.should.equal(5);
      capped.filter((r) => r.full).length.should.equal(7);
      const known = capped.find((r) => r.created).device.deviceid;
      (await store.register({ deviceid: known, ipaddr: '10.0.0.2', ssid: 'x' }, Date.now(), 5)).created.should.be.false();
      (await place.count('devices')).should.equal(5);
    });

    it('poll sets lastseen, get does not; both are undefined for an unknown id', async function () {
      const t0 = Date.parse('2026-01-01T00:00:00Z');
      await store.register({ deviceid: 'p', ipaddr: '10.0.0.1', ssid: 'x' }, t0);
      should(await store.poll('nobody')).be.undefined();
      should(await store.get('nobody')).be.undefined();
      (await store.poll('p', t0 + 5000)).lastseen.should.equal('2026-01-01T00:00:05.000Z');
      // Committed with the next batch of writes.
      await store.logReading('p', 1, {}, t0 + 6000);
      (await store.get('p')).lastseen.should.equal('2026-01-01T00:00:06.000Z');
      (await store.get('p')).datec.should.equal('2026-01-01T00:00:00.000Z');
    });

    it('update: name and flags; cfgsn goes up only when data changes; undefined for an unknown id', async function () {
      await reg('u');
      (await store.update('u', { name: 'n1', flags: 3 })).should.containEql({ name: 'n1', flags: 3, cfgsn: 1 });
      (await store.update('u', { data: '{"interval":30}' })).should.containEql({ cfgsn: 2, data: { interval: 30 } });
      (await store.update('u', { data: '{"interval":30}' })).cfgsn.should.equal(2);
      (await store.update('u', { data: '{"interval":60}' })).cfgsn.should.equal(3);
      should(await store.update('ghost', { name: 'x' })).be.undefined();
    });

    it('list: case-insensitive search with %, _ and \\ taken literally, sorting, paging and the total', async function () {
      const t0 = Date.parse('2026-01-01T00:00:00Z');
      await store.register({ deviceid: 'AA01', ipaddr: '10.0.0.1', ssid: 'Lab_1' }, t0);
      await store.register({ deviceid: 'bb02', ipaddr: '10.0.0.2', ssid: 'lab%2' }, t0 + 1000);
      await store.register({ deviceid: 'cc03', ipaddr: '192.168.1.3', ssid: 'home' }, t0 + 2000);
      await store.update('cc03', { name: 'Zeta' });
      await store.update('bb02', { name: 'alpha' });
      (await store.list({ limit: 10, offset: 0, search: 'LAB' })).total.should.equal(2);
      (await store.list({ limit: 10, offset: 0, search: '_' })).devices.map((d) => d.deviceid).should.eql(['AA01']);
      (await store.list({ limit: 10, offset: 0, search: '%' })).devices.map((d) => d.deviceid).should.eql(['bb02']);
      (await store.list({ limit: 10, offset: 0, search: '\\' })).total.should.equal(0);
      (await store.list({ limit: 10, offset: 0, search: '192.168' })).devices.map((d) => d.deviceid).should.eql(['cc03']);
      // Bytewise: upper case before lower case.
      (await store.list({ limit: 10, offset: 0 })).devices.map((d) => d.deviceid).should.eql(['AA01', 'bb02', 'cc03']);
      (await store.list({ limit: 10, offset: 0, sort: 'name' })).devices.map((d) => d.name).should.eql(['', 'Zeta', 'alpha']);
      (await store.list({ limit: 10, offset: 0, sort: 'lastseen', descending: true })).devices.map((d) => d.deviceid).should.eql(['cc03', 'bb02', 'AA01']);
      const page = await store.list({ limit: 2, offset: 1, sort: 'deviceid' });
      page.total.should.equal(3);
      page.devices.map((d) => d.deviceid).should.eql(['bb02', 'cc03']);
      // An unknown sort column falls back to the id.
      (await store.list({ limit: 10, offset: 0, sort: 'deviceid; DROP TABLE devices' })).devices.length.should.equal(3);
    });

    it('stores SQL-injection strings and any Unicode verbatim', async function () {
      const evil = ["x'); DROP TABLE devices; --", 'Robert"); DELETE FROM readings; --', "' OR '1'='1", 'ünïcödé ✓ 🌡'];
      for (const [i, name] of evil.entries()) {
        await store.register({ deviceid: `d${i}`, ipaddr: '::1', ssid: name, name });
        await store.update(`d${i}`, { name, data: JSON.stringify({ k: name }) });
        (await store.logReading(`d${i}`, i, { v: name })).should.be.true();
      }
      const { devices, total } = await store.list({ limit: 10, offset: 0 });
      total.should.equal(4);
      devices.map((d) => d.name).should.eql(evil);
      devices.map((d) => d.data.k).should.eql(evil);
      (await store.readings('d3', { limit: 1 }))[0].payload.should.eql({ v: evil[3] });
      should(await store.get("d0' OR '1'='1")).be.undefined();
    });

    it('readings: newest first, limit and since; any JSON payload round-trips; nothing is stored for an unknown id', async function () {
      const t0 = Date.parse('2026-02-01T00:00:00Z');
      await reg('r');
      const payloads = [{ a: 1, nested: { b: [1, 2, { c: null }] } }, 'text', 42, null, [1, 'two'], { z: 1, a: 2 }];
      for (const [i, p] of payloads.entries()) (await store.logReading('r', i + 1, p, t0 + i * 1000)).should.be.true();
      (await store.logReading('r', null, { noSeq: true }, t0 + 10_000)).should.be.true();
      (await store.logReading('stranger', 1, {}, t0)).should.be.false();
      const all = await store.readings('r', { limit: 100 });
      all.map((r) => r.seqn).should.eql([null, 6, 5, 4, 3, 2, 1]);
      all.slice(1).reverse().map((r) => r.payload).should.eql(payloads);
      Object.keys(all[1].payload).should.eql(['z', 'a']); // key order kept
      all[0].received.should.equal('2026-02-01T00:00:10.000Z');
      (await store.readings('r', { limit: 2 })).length.should.equal(2);
      (await store.readings('r', { limit: 100, since: '2026-02-01T00:00:04.000Z' })).map((r) => r.seqn).should.eql([null, 6, 5]);
      (await place.count('readings')).should.equal(7);
    });

    it('history: the window only, downsampled per bucket in the database, numbers only, per field', async function () {
      const t0 = Date.parse('2026-03-01T00:00:00Z');
      await reg('h');
      await reg('other');
      // One reading a second for 10 minutes; a0 rises by one each, heap is text in one of them, and one has no data.
      for (let i = 0; i < 600; i++) {
        const data = { a0: i, heap: i === 5 ? 'lots' : 1000 + (i % 7) };
        (await store.logReading('h', i + 1, i === 7 ? { SEQN: 8 } : { SEQN: i + 1, data }, t0 + i * 1000)).should.be.true();
      }
      await store.logReading('other', 1, { data: { a0: 99999 } }, t0 + 300_000);
      // The last five minutes in one-minute buckets.
      const since = t0 + 300_000;
      const h = await store.history('h', { fields: ['a0', 'heap'], since, bucketMs: 60_000 });
      h.map((b) => b.t).should.eql([0, 1, 2, 3, 4].map((k) => since + k * 60_000));
      h.map((b) => b.n).should.eql([60, 60, 60, 60, 60]);
      h[0].values.a0.should.eql({ avg: 329.5, min: 300, max: 359 });
      h[4].values.a0.max.should.equal(599);
      h[0].values.heap.min.should.equal(1000);
      h[0].values.heap.max.should.equal(1006);
      // The first minute: the reading without data counts, but has no a0; the text heap is no number.
      const first = await store.history('h', { fields: ['a0', 'heap'], since: t0, bucketMs: 60_000 });
      first.length.should.equal(10);
      first[0].n.should.equal(60);
      first[0].values.a0.avg.should.be.approximately((59 * 60 / 2 - 7) / 59, 1e-9);
      first[0].values.heap.min.should.equal(1000);
      // A field no reading has: buckets without values.
      (await store.history('h', { fields: ['nope'], since, bucketMs: 300_000 })).should.eql([{ t: since, n: 300, values: {} }]);
      (await store.history('stranger', { fields: ['a0'], since: t0, bucketMs: 60_000 })).should.eql([]);
    });

    it('provisioned devices are listed until they register, newest first, and can be forgotten', async function () {
      const t0 = Date.parse('2026-04-01T00:00:00Z');
      await store.noteProvisioned('p1', 0, t0);
      await store.noteProvisioned('p2', 3, t0 + 1000);
      await store.noteProvisioned('p3', 0, t0 + 2000);
      (await store.provisioned(10)).should.eql([
        { deviceid: 'p3', keyver: 0, created: '2026-04-01T00:00:02.000Z' },
        { deviceid: 'p2', keyver: 3, created: '2026-04-01T00:00:01.000Z' },
        { deviceid: 'p1', keyver: 0, created: '2026-04-01T00:00:00.000Z' },
      ]);
      (await store.provisioned(1)).map((p) => p.deviceid).should.eql(['p3']);
      await reg('p2');
      (await store.provisioned(10)).map((p) => p.deviceid).should.eql(['p3', 'p1']);
      (await store.forgetProvisioned('p3')).should.be.true();
      (await store.forgetProvisioned('p3')).should.be.false();
      (await store.provisioned(10)).map((p) => p.deviceid).should.eql(['p1']);
      // A removed device's provisioning record goes with it: it is not listed as provisioned again.
      (await store.remove('p2')).should.be.true();
      (await store.provisioned(10)).map((p) => p.deviceid).should.eql(['p1']);
    });

    it('group commit: concurrent writes share transactions, and each resolves after commit', async function () {
      await reg('dev');
      const before = { ...store.groupCommitStats };
      const n = 1000;
      const stored = await Promise.all(Array.from({ length: n }, (_, i) => store.logReading('dev', i, { SEQN: i })));
      stored.every(Boolean).should.be.true();
      (store.groupCommitStats.batches - before.batches).should.be.below(n / 10);
      store.groupCommitStats.largestBatch.should.be.above(10);
      // Committed: a connection of its own sees every row.
      (await place.count('readings')).should.equal(n);
    });

    it('close() waits for queued writes', async function () {
      await reg('dev');
      const writes = Array.from({ length: 300 }, (_, i) => store.logReading('dev', i, { i }));
      await store.close();
      (await Promise.all(writes)).every(Boolean).should.be.true();
      (await place.count('readings')).should.equal(300);
      store = place.open();
    });

    it('remove: readings and commands go, the replay state stays; a second remove is false', async function () {
      await reg('gone');
      await store.logReading('gone', 1, {});
      (await store.checkReplay('gone', 1, 0)).accepted.should.be.true();
      await store.queueCommand('gone', await store.nextCommandSeq('gone'), { sealed: 1 });
      (await store.remove('gone')).should.be.true();
      (await store.remove('gone')).should.be.false();
      should(await store.get('gone')).be.undefined();
      (await store.readings('gone', { limit: 10 })).should.eql([]);
      (await store.pendingCommands('gone', 10)).should.eql([]);
      (await store.checkReplay('gone', 1, 0)).should.eql({ accepted: false, reason: 'replay' });
      (await place.count('readings')).should.equal(0);
      (await place.count('commands')).should.equal(0);
    });

    it('replay, strict: 100 copies at once give exactly one acceptance; the state survives a reopen', async function () {
      const results = await Promise.all(Array.from({ length: 100 }, () => store.checkReplay('dev', 7, 0)));
      results.filter((r) => r.accepted).length.should.equal(1);
      results.filter((r) => !r.accepted).every((r) => r.reason === 'replay').should.be.true();
      (await store.checkReplay('dev', 6, 0)).should.eql({ accepted: false, reason: 'stale' });
      await reopen();
      (await store.checkReplay('dev', 7, 0)).should.eql({ accepted: false, reason: 'replay' });
      (await store.checkReplay('dev', 8, 0)).accepted.should.be.true();
      (await store.replayState('dev')).top.should.equal(8);
    });

    it('replay, window: late numbers pass once, in any order and concurrency; matches the pure decision', async function () {
      const seqs = [10, 5, 8, 8, 12, 3, 5, 11, 40, 9, 30, 25, 41, 41];
      let state = lib.INITIAL_STATE;
      const expected = seqs.map((s) => {
        const d = lib.decide(state, s, 16);
        if (d.accepted) state = d.next;
        return d.accepted ? true : d.reason;
      });
      const got = [];
      for (const s of seqs) {
        const r = await store.checkReplay('w', s, 16);
        got.push(r.accepted ? true : r.reason);
      }
      got.should.eql(expected);
      await reopen();
      (await store.replayState('w')).should.eql(state);
      // 50 concurrent copies of each of five late numbers: each accepted exactly once.
      const late = [35, 36, 37, 38, 39];
      const results = await Promise.all(late.flatMap((s) => Array.from({ length: 50 }, () => store.checkReplay('w', s, 16).then((r) => (r.accepted ? s : 0)))));
      results.filter(Boolean).sort().should.eql(late);
    });

    it('resetReplay: forgets a counter, or accepts only numbers from a floor', async function () {
      (await store.checkReplay('z', 100, 0)).accepted.should.be.true();
      await store.resetReplay('z', 50);
      (await store.checkReplay('z', 49, 0)).accepted.should.be.false();
      (await store.checkReplay('z', 50, 0)).accepted.should.be.true();
      await store.resetReplay('z');
      await reopen();
      (await store.checkReplay('z', 0, 0)).accepted.should.be.true();
    });

    it('commands: distinct increasing SEQNs under concurrency and across a reopen; pending, delivery, acknowledgement, log', async function () {
      await reg('c');
      const seqns = await Promise.all(Array.from({ length: 20 }, () => store.nextCommandSeq('c')));
      [...new Set(seqns)].sort((a, b) => a - b).should.eql(Array.from({ length: 20 }, (_, i) => i + 1));
      await reopen();
      (await store.nextCommandSeq('c')).should.equal(21);
      for (const n of [21, 22, 23, 24]) await store.queueCommand('c', n, { iv: `iv${n}`, data: 'x' });
      (await store.pendingCommands('c', 2)).map((r) => r.seqn).should.eql([21, 22]);
      (await store.pendingCommands('c', 10))[0].command.should.eql({ iv: 'iv21', data: 'x' });
      await store.markDelivered('c', [21], 'push');
      await store.ackCommands('c', 23);
      await store.ackCommands('c', 22); // lower than one already applied: nothing changes
      (await store.pendingCommands('c', 10)).map((r) => r.seqn).should.eql([24]);
      (await store.commandLog('c', 10)).map((r) => `${r.seqn}:${r.state}`).should.eql(['24:pending', '23:acknowledged', '22:acknowledged', '21:delivered']);
      (await store.commandLog('c', 10))[1].at.should.match(/^\d{4}-\d\d-\d\dT/);
    });

    it('expireCommands: marks each old unacknowledged command once, oldest devices first', async function () {
      await reg('e1');
      await reg('e2');
      const old = Date.now() - 60_000;
      await store.queueCommand('e2', 1, { n: 1 }, old);
      await store.queueCommand('e1', 1, { n: 1 }, old);
      await store.queueCommand('e1', 2, { n: 2 }, old);
      await store.queueCommand('e1', 3, { n: 3 });
      await store.ackCommands('e1', 1);
      (await store.expireCommands(30_000)).map((c) => `${c.deviceid}:${c.seqn}`).should.eql(['e1:2', 'e2:1']);
      (await store.expireCommands(30_000)).should.eql([]);
      (await store.commandLog('e1', 10)).map((c) => c.state).should.eql(['pending', 'expired', 'acknowledged']);
    });

    it('key versions: rekey, promotion, revocation on removal, and the floor for a new registration', async function () {
      should(await store.beginRekey('nobody')).be.undefined();
      (await store.checkKey('nobody', 0)).should.equal('current');
      await reg('k', { keyver: 3 });
      (await store.checkKey('k', 3)).should.equal('current');
      (await store.checkKey('k', 4)).should.equal('refused');
      (await store.beginRekey('k')).should.eql({ keyver: 3, pending: 4 });
      (await store.beginRekey('k')).should.eql({ keyver: 3, pending: 4 });
      (await store.checkKey('k', 4)).should.equal('pending');
      await store.promoteKey('k', 4);
      (await store.checkKey('k', 3)).should.equal('refused');
      (await store.get('k')).should.containEql({ keyver: 4, pendingkeyver: null });
      await store.beginRekey('k');
      await store.remove('k');
      await reopen();
      (await store.keyFloor('k')).should.equal(6);
      (await store.checkKey('k', 5)).should.equal('refused');
      (await store.checkKey('k', 6)).should.equal('current');
      (await reg('k', { keyver: 6 })).created.should.be.true();
      (await store.keyFloor('k')).should.equal(0);
    });

    it('rekey keys: the wrapped secret kept once per pending version, the wrapped key kept with the promotion, both across a reopen', async function () {
      await reg('w');
      (await store.keyRecord('w')).should.eql({ keyver: 0 });
      should(await store.keyRecord('nobody')).be.undefined();
      // No rekey pending: nothing kept.
      should(await store.offerRekey('w', 1, 'secret-a')).be.undefined();
      await store.beginRekey('w');
      (await store.offerRekey('w', 1, 'secret-a')).should.equal('secret-a');
      // Sealed again (or by another instance): the first secret stays.
      (await store.offerRekey('w', 1, 'secret-b')).should.equal('secret-a');
      should(await store.offerRekey('w', 2, 'secret-c')).be.undefined();
      await reopen();
      (await store.keyRecord('w')).should.eql({ keyver: 0, pending: 1, rekeysecret: 'secret-a' });
      (await lib.admitUplink(store, 'w', 1, 0, 'before-send', 1, 'key-1')).accepted.should.be.true();
      (await store.keyRecord('w')).should.eql({ keyver: 1, keywrap: 'key-1' });
      await reopen();
      (await store.keyRecord('w')).should.eql({ keyver: 1, keywrap: 'key-1' });
      // A later message under the same version does not replace the key.
      (await lib.admitUplink(store, 'w', 2, 0, 'before-send', 1, 'other')).accepted.should.be.true();
      (await store.keyRecord('w')).should.eql({ keyver: 1, keywrap: 'key-1' });
      // The next rekey keeps the current wrapped key until it completes; removal forgets both.
      await store.beginRekey('w');
      (await store.offerRekey('w', 2, 'secret-2')).should.equal('secret-2');
      (await store.keyRecord('w')).should.eql({ keyver: 1, pending: 2, keywrap: 'key-1', rekeysecret: 'secret-2' });
      await store.remove('w');
      should(await store.keyRecord('w')).be.undefined();
    });

    it('uplink admission: the key version before the window, promotion by the first accepted message, under concurrency', async function () {
      const admit = (id, seq, kv) => lib.admitUplink(store, id, seq, 0, 'before-send', kv);
      await reg('up');
      (await admit('up', 1, 0)).accepted.should.be.true();
      // A refused version does not move the counter.
      (await admit('up', 2 ** 53 - 1, 7)).should.eql({ accepted: false, reason: 'key-version' });
      (await admit('up', 2, 0)).accepted.should.be.true();
      await store.beginRekey('up');
      // A replay under the pending version does not promote it.
      (await admit('up', 2, 1)).reason.should.equal('replay');
      (await store.get('up')).should.containEql({ keyver: 0, pendingkeyver: 1 });
      // Copies under the old and the new version at once: one number is accepted once, and once the new version
      // is accepted the old one is refused.
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => admit('up', 3 + (i % 2), i % 2 ? 1 : 0)));
      results.filter((r) => r.accepted).length.should.be.within(1, 2);
      (await store.get('up')).should.containEql({ keyver: 1, pendingkeyver: null });
      (await admit('up', 10, 0)).should.eql({ accepted: false, reason: 'key-version' });
      (await admit('up', 10, 1)).accepted.should.be.true();
      // Unregistered ids: any version at or above the floor of a removed device.
      (await admit('new', 1, 0)).accepted.should.be.true();
    });

    it('prune: by age and by count, in steps, each committed on its own', async function () {
      await reg('a');
      await reg('b');
      const old = Date.now() - 3 * 86400000;
      await Promise.all(Array.from({ length: 700 }, (_, i) => store.logReading('a', i, { i }, old + i)));
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.logReading('b', i, { i })));
      (await store.prune({ maxAgeMs: 86400000 })).should.equal(700);
      (await place.count('readings')).should.equal(20);
      (await store.prune({ maxPerDevice: 5 })).should.equal(15);
      (await store.readings('b', { limit: 100 })).map((r) => r.seqn).should.eql([19, 18, 17, 16, 15]);
    });

    it('reopens at the latest schema version without migrating again, keeping its data', async function () {
      await reg('keep');
      await reopen();
      (await store.get('keep')).deviceid.should.equal('keep');
      (await place.count('devices')).should.equal(1);
    });
  });
}

describe('PostgresStore: several instances on one database, and a database that goes away', function () {
  this.timeout(60000);
  let cluster;
  let url;
  let stores = [];
  before(async function () {
    cluster = await startPostgres();
  });
  after(function () {
    cluster?.destroy();
  });
  beforeEach(async function () {
    url = await cluster.createDatabase('multi');
  });
  afterEach(async function () {
    await Promise.all(stores.map((s) => s.close()));
    stores = [];
  });
  const instances = async (n, options = {}) => {
    stores = Array.from({ length: n }, () => new lib.PostgresStore({ connectionString: url, poolSize: 4, ...options }));
    // Started together: they migrate one after the other, once.
    await Promise.all(stores.map((s) => s.ready()));
    return stores;
  };

  it('three instances that start together migrate once; a schema newer than the package is refused', async function () {
    await instances(3);
    (await cluster.query(url, 'SELECT version FROM e2ee_schema_version ORDER BY version')).map((r) => r.version).should.eql(lib.PG_MIGRATIONS.map((_, i) => i + 1));
    await cluster.query(url, 'INSERT INTO e2ee_schema_version (version) VALUES (999)');
    const newer = new lib.PostgresStore({ connectionString: url, poolSize: 1 });
    await newer.ready().should.be.rejectedWith(/newer than this package supports/);
    await newer.close();
  });

  it('the source address of a device that moves between instances is stale for at most SOURCE_REFRESH_MS', async function () {
    const [a, b] = await instances(2);
    await a.register({ deviceid: 'mover', ipaddr: '10.0.0.1', ssid: 'lab' });
    const t0 = Date.now();
    await a.noteSource('mover', '10.0.0.5', t0);
    await b.noteSource('mover', '10.0.0.6', t0);
    (await a.seenAddress('mover')).should.equal('10.0.0.6');
    // Back at .5 through a, which wrote .5 a moment ago: not written again yet...
    await a.noteSource('mover', '10.0.0.5', t0 + 1000);
    (await a.seenAddress('mover')).should.equal('10.0.0.6');
    // ...but once the refresh time has passed.
    await a.noteSource('mover', '10.0.0.5', t0 + lib.SOURCE_REFRESH_MS);
    (await b.seenAddress('mover')).should.equal('10.0.0.5');
  });

  it('50 copies of one number spread over three instances: exactly one accepted, in strict and window modes', async function () {
    const [a, b, c] = await instances(3);
    for (const window of [0, 64]) {
      const id = `dev-${window}`;
      for (let round = 1; round <= 5; round++) {
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => [a, b, c][i % 3].checkReplay(id, round * 10, window)));
        results.filter((r) => r.accepted).length.should.equal(1);
      }
    }
  });

  it('command SEQNs, the device cap and first registrations are decided once across instances', async function () {
    const [a, b, c] = await instances(3);
    const seqns = await Promise.all(Array.from({ length: 30 }, (_, i) => [a, b, c][i % 3].nextCommandSeq('d')));
    new Set(seqns).size.should.equal(30);
    const regs = await Promise.all(Array.from({ length: 30 }, (_, i) => [a, b, c][i % 3].register({ deviceid: `r${i % 10}`, ipaddr: '10.0.0.1', ssid: 'x' }, Date.now(), 6)));
    regs.filter((r) => r.created).length.should.equal(6);
    Number((await cluster.query(url, 'SELECT count(*) AS n FROM devices'))[0].n).should.equal(6);
  });

  it('a rekey begun on one instance is honoured by another at once; a removal on one revokes on all', async function () {
    const [a, b] = await instances(2);
    await a.register({ deviceid: 'k', ipaddr: '10.0.0.1', ssid: 'x' });
    (await a.beginRekey('k')).should.eql({ keyver: 0, pending: 1 });
    (await b.checkKey('k', 1)).should.equal('pending');
    (await lib.admitUplink(b, 'k', 1, 0, 'before-send', 1)).accepted.should.be.true();
    (await a.checkKey('k', 0)).should.equal('refused');
    await b.remove('k');
    (await a.checkKey('k', 1)).should.equal('refused');
    (await a.keyFloor('k')).should.equal(2);
  });

  it('key records: a device at rest answers from memory for its current version; another instance\'s rekey and removal are read, and a stale record admits nothing', async function () {
    const [a, b] = await instances(2);
    await a.register({ deviceid: 'kr', ipaddr: '10.0.0.1', ssid: 'x' });
    // Read once, then answered from memory (a value, not a promise) for the version it is at.
    (await a.keyRecord('kr', 0)).should.eql({ keyver: 0 });
    a.keyRecord('kr', 0).should.eql({ keyver: 0 });
    (a.keyRecord('kr', 0) instanceof Promise).should.be.false();
    // Without a version, or for another one, it is read.
    (a.keyRecord('kr') instanceof Promise).should.be.true();
    // b begins a rekey and completes it (the first message under the pending version, with the new key wrapped).
    await b.beginRekey('kr');
    (await b.offerRekey('kr', 1, 'secret-1')).should.equal('secret-1');
    (await a.keyRecord('kr', 1)).should.eql({ keyver: 0, pending: 1, rekeysecret: 'secret-1' });
    (await lib.admitUplink(b, 'kr', 1, 0, 'before-send', 1, 'key-1')).accepted.should.be.true();
    (await a.keyRecord('kr', 1)).should.eql({ keyver: 1, keywrap: 'key-1' });
    // A record a holds from before a promotion elsewhere opens a message under the old version, and the
    // uplink's transaction refuses it: the memory decides nothing.
    await a.register({ deviceid: 'kr2', ipaddr: '10.0.0.1', ssid: 'x' });
    (await a.keyRecord('kr2', 0)).should.eql({ keyver: 0 });
    await b.beginRekey('kr2');
    (await lib.admitUplink(b, 'kr2', 1, 0, 'before-send', 1, 'key-2')).accepted.should.be.true();
    a.keyRecord('kr2', 0).should.eql({ keyver: 0 });
    const stale = await lib.admitUplink(a, 'kr2', 2, 0, 'before-send', 0);
    stale.accepted.should.be.false();
    // A removal on b: a's record is stale, and nothing is admitted under it either.
    (await a.keyRecord('kr', 1)).should.eql({ keyver: 1, keywrap: 'key-1' });
    await b.remove('kr');
    (await lib.admitUplink(a, 'kr', 5, 0, 'before-send', 1)).accepted.should.be.false();
    // a's own removal forgets at once.
    (await a.keyRecord('kr2', 1)).should.eql({ keyver: 1, keywrap: 'key-2' });
    await a.remove('kr2');
    should(await a.keyRecord('kr2', 1)).be.undefined();
  });

  it('while the database is down every call fails at once as unavailable (503); it recovers without a new store', async function () {
    const health = [];
    const [s] = await instances(1, { onHealth: (h) => health.push(h.available ? 'up' : h.code) });
    await s.register({ deviceid: 'h', ipaddr: '10.0.0.1', ssid: 'x' });
    (await s.logReading('h', 1, {})).should.be.true();
    cluster.stop();
    try {
      const started = Date.now();
      const errors = await Promise.all([s.logReading('h', 2, {}), s.checkReplay('h', 2, 0), s.get('h'), s.list({ limit: 5, offset: 0 })].map((p) => p.then(() => null, (e) => e)));
      for (const e of errors) e.should.be.instanceOf(lib.StorageUnavailableError);
      (Date.now() - started).should.be.below(5000);
    } finally {
      cluster.start();
    }
    // The pool reconnects: the next calls succeed, and nothing accepted before is lost.
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await s.logReading('h', 3, {}).then(() => true, () => false);
      if (!ok) await new Promise((r) => setTimeout(r, 200));
    }
    ok.should.be.true();
    (await s.checkReplay('h', 3, 0)).accepted.should.be.true();
    (await s.readings('h', { limit: 10 })).map((r) => r.seqn).should.eql([3, 1]);
    health[0].should.match(/^(57P01|08|PG_|E)/);
    health[health.length - 1].should.equal('up');
  });
});
