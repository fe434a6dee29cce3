'use strict';
require('should');
const { SqliteStore, MIGRATIONS } = require('../../dist/nodes/lib');
const { tempDir, querySqlite } = require('../support/tmp');

describe('lib/store SqliteStore', function () {
  this.timeout(20000);
  let tmp;
  let store;
  beforeEach(async function () {
    tmp = tempDir();
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite') });
    await store.ready();
  });
  afterEach(async function () {
    await store.close();
    tmp.cleanup();
  });

  describe('retention', function () {
    it('parses and describes the rules; refuses anything else', function () {
      const lib = require('../../dist/nodes/lib');
      lib.parseRetention('').should.eql({});
      lib.parseRetention('${E2EE_RETENTION}').should.eql({}); // a variable Node-RED left unset
      lib.parseRetention('30d').should.eql({ maxAgeMs: 30 * 86400000 });
      lib.parseRetention(' 12h , 1000 ').should.eql({ maxAgeMs: 12 * 3600000, maxPerDevice: 1000 });
      lib.parseRetention(250).should.eql({ maxPerDevice: 250 });
      for (const bad of ['30x', '0d', '0', '1d,2d', '-5', '10,20', 'forever']) (() => lib.parseRetention(bad)).should.throw(/bad retention/);
      const t = lib.catalogTranslator({ e2ee: require('../../nodes/shared/locales/en-US/common.json') });
      lib.describeRetention(lib.parseRetention('90d,1000'), t).should.equal('at most 90d old, the newest 1000 per device');
      lib.describeRetention({}, t).should.equal('all (no retention set)');
    });

    it('by count: keeps the newest N of each device, in steps; integrity_check passes', async function () {
      const lib = require('../../dist/nodes/lib');
      for (const id of ['a', 'b']) await store.register({ deviceid: id, ipaddr: '10.0.0.1', ssid: 'x' });
      const writes = [];
      for (let i = 1; i <= 1300; i++) writes.push(store.logReading('a', i, { i }));
      for (let i = 1; i <= 5; i++) writes.push(store.logReading('b', i, { i }));
      await Promise.all(writes);
      const batchesBefore = store.groupCommitStats.batches;
      (await store.prune({ maxPerDevice: 10 })).should.equal(1290);
      // 1290 rows in steps of at most PRUNE_BATCH: at least three transactions.
      (store.groupCommitStats.batches - batchesBefore).should.be.aboveOrEqual(Math.ceil(1290 / lib.PRUNE_BATCH));
      (await store.readings('a', { limit: 100 })).map((r) => r.seqn).should.eql([1300, 1299, 1298, 1297, 1296, 1295, 1294, 1293, 1292, 1291]);
      (await store.readings('b', { limit: 100 })).length.should.equal(5);
      // Only devices that logged since the last prune are looked at again.
      (await store.prune({ maxPerDevice: 10 })).should.equal(0);
      await store.logReading('a', 1301, {});
      (await store.prune({ maxPerDevice: 10 })).should.equal(1);
      await store.close();
      (await querySqlite(tmp.file('sub/dir/db.sqlite'), 'PRAGMA integrity_check'))[0].integrity_check.should.equal('ok');
      store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite') });
      await store.ready();
    });

    it('by age: removes what is older, and readings logged meanwhile commit between its steps', async function () {
      await store.register({ deviceid: 'a', ipaddr: '10.0.0.1', ssid: 'x' });
      const old = Date.now() - 3 * 86400000;
      const writes = [];
      for (let i = 1; i <= 2000; i++) writes.push(store.logReading('a', i, { i }, old));
      await Promise.all(writes);
      let pruneDone = false;
      const pruning = store.prune({ maxAgeMs: 86400000 }).then((n) => { pruneDone = true; return n; });
      // Ingest while the prune runs: these commit before it has finished (it is not one long transaction).
      const during = [];
      for (let i = 2001; i <= 2005; i++) during.push(store.logReading('a', i, { i }).then(() => pruneDone));
      (await Promise.all(during)).should.containEql(false);
      (await pruning).should.equal(2000);
      (await store.readings('a', { limit: 100 })).map((r) => r.seqn).should.eql([2005, 2004, 2003, 2002, 2001]);
      await store.close();
      (await querySqlite(tmp.file('sub/dir/db.sqlite'), 'PRAGMA integrity_check'))[0].integrity_check.should.equal('ok');
      store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite') });
      await store.ready();
    });
  });

  it('creates the file and its directory, in WAL mode, at the latest schema version', async function () {
    const [mode] = await querySqlite(tmp.file('sub/dir/db.sqlite'), 'PRAGMA journal_mode');
    mode.journal_mode.should.equal('wal');
    const [v] = await querySqlite(tmp.file('sub/dir/db.sqlite'), 'SELECT max(version) AS v FROM schema_version');
    v.v.should.equal(MIGRATIONS.length);
    const tables = (await querySqlite(tmp.file('sub/dir/db.sqlite'), "SELECT name FROM sqlite_master WHERE type = 'table'")).map((r) => r.name);
    tables.should.containDeep(['devices', 'replay_state', 'readings', 'schema_version']);
  });

  it('reopens an existing file without migrating again, keeping its data', async function () {
    await store.register({ deviceid: 'a', ipaddr: '10.0.0.1', ssid: 'x' });
    await store.close();
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite') });
    await store.ready();
    (await store.get('a')).ipaddr.should.equal('10.0.0.1');
    (await querySqlite(tmp.file('sub/dir/db.sqlite'), 'SELECT version FROM schema_version')).length.should.equal(MIGRATIONS.length);
  });

  it('migrates a database of the schema before the X25519 rekey, keeping a device and its rekey under way', async function () {
    await store.close();
    const sqlite3 = require('sqlite3');
    const file = tmp.file('old/db.sqlite');
    require('node:fs').mkdirSync(tmp.file('old'), { recursive: true });
    const before = MIGRATIONS.length - 1;
    await new Promise((resolve, reject) => {
      const db = new sqlite3.Database(file);
      const sql = ['CREATE TABLE schema_version (version INTEGER NOT NULL)', ...MIGRATIONS.slice(0, before).flat()];
      for (let v = 1; v <= before; v++) sql.push(`INSERT INTO schema_version (version) VALUES (${v})`);
      sql.push("INSERT INTO devices (deviceid, name, lastseen, ssid, ipaddr, cfgsn, flags, data, datec, cmdport, keyver, pendingkeyver) VALUES ('old', '', '2026-01-01T00:00:00.000Z', 'x', '10.0.0.1', 1, 0, '{}', '2026-01-01T00:00:00.000Z', 80, 2, 3)");
      db.exec(sql.join(';\n'), (err) => db.close(() => (err ? reject(err) : resolve())));
    });
    store = new SqliteStore({ file });
    await store.ready();
    (await querySqlite(file, 'SELECT max(version) AS v FROM schema_version'))[0].v.should.equal(MIGRATIONS.length);
    (await store.keyRecord('old')).should.eql({ keyver: 2, pending: 3 });
    (await store.offerRekey('old', 3, 'wrapped')).should.equal('wrapped');
    await store.close();
    store = new SqliteStore({ file });
    await store.ready();
    (await store.keyRecord('old')).should.eql({ keyver: 2, pending: 3, rekeysecret: 'wrapped' });
    await store.close();
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite') });
    await store.ready();
  });

  it('refuses a database from a newer version of the package', async function () {
    await store.close();
    const sqlite3 = require('sqlite3');
    await new Promise((resolve, reject) => {
      const db = new sqlite3.Database(tmp.file('sub/dir/db.sqlite'));
      db.run('INSERT INTO schema_version (version) VALUES (999)', (err) => db.close(() => (err ? reject(err) : resolve())));
    });
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite') });
    await store.ready().should.be.rejectedWith(/newer than this package supports/);
  });

  it('group commit: concurrent writes share transactions, and each resolves after commit', async function () {
    await store.register({ deviceid: 'dev', ipaddr: '10.0.0.1', ssid: 'x' });
    const before = { ...store.groupCommitStats };
    const n = 2000;
    await Promise.all(Array.from({ length: n }, (_, i) => store.logReading('dev', i, { SEQN: i })));
    const batches = store.groupCommitStats.batches - before.batches;
    batches.should.be.below(n / 10); // 2 writes per reading; they must have been grouped
    store.groupCommitStats.largestBatch.should.be.above(10);
    // Committed: another connection sees every row.
    const [c] = await querySqlite(tmp.file('sub/dir/db.sqlite'), 'SELECT count(*) AS n FROM readings');
    c.n.should.equal(n);
  });

  it('a poll\'s lastseen starts no transaction of its own: the next batch takes it, or it commits alone after a short delay; get and list see it at once', async function () {
    const file = tmp.file('sub/dir/db.sqlite');
    await store.register({ deviceid: 'dev', ipaddr: '10.0.0.1', ssid: 'x' });
    await store.register({ deviceid: 'other', ipaddr: '10.0.0.2', ssid: 'x' });
    const seen = async () => (await querySqlite(file, "SELECT lastseen FROM devices WHERE deviceid = 'dev'"))[0].lastseen;
    const t = Date.parse('2030-01-01T00:00:00.000Z');
    const before = store.groupCommitStats.batches;
    (await store.poll('dev', t)).lastseen.should.equal('2030-01-01T00:00:00.000Z');
    // The poll's answer did not wait for a commit, and none started for it (the poll's next reads are not queued
    // behind one on the connection).
    (store.groupCommitStats.batches - before).should.equal(0);
    // Another device's reading: one batch takes both.
    await store.logReading('other', 1, { SEQN: 1 });
    (store.groupCommitStats.batches - before).should.equal(1);
    (await seen()).should.equal('2030-01-01T00:00:00.000Z');
    // Alone, it commits on its own soon (another connection sees it).
    await store.poll('dev', t + 1000);
    const end = Date.now() + 5000;
    while ((await seen()) !== '2030-01-01T00:00:01.000Z') {
      if (Date.now() > end) throw new Error('the deferred lastseen never committed');
      await new Promise((r) => setTimeout(r, 20));
    }
    // get and list write a pending lastseen before they read.
    await store.poll('dev', t + 2000);
    (await store.get('dev')).lastseen.should.equal('2030-01-01T00:00:02.000Z');
    await store.poll('dev', t + 3000);
    (await store.list({ limit: 10, offset: 0, sort: 'lastseen', descending: true })).devices[0].should.containEql({ deviceid: 'dev', lastseen: '2030-01-01T00:00:03.000Z' });
    // close commits what is still deferred.
    await store.poll('dev', t + 4000);
    await store.close();
    (await seen()).should.equal('2030-01-01T00:00:04.000Z');
  });

  it('a single write at low load commits alone, without waiting for company', async function () {
    await store.register({ deviceid: 'dev', ipaddr: '10.0.0.1', ssid: 'x' });
    const before = store.groupCommitStats.batches;
    await store.logReading('dev', 1, { SEQN: 1 });
    (store.groupCommitStats.batches - before).should.equal(1);
  });

  it('close() waits for queued writes', async function () {
    await store.register({ deviceid: 'dev', ipaddr: '10.0.0.1', ssid: 'x' });
    const writes = Array.from({ length: 500 }, (_, i) => store.logReading('dev', i, { i }));
    await store.close();
    await Promise.all(writes);
    const [c] = await querySqlite(tmp.file('sub/dir/db.sqlite'), 'SELECT count(*) AS n FROM readings');
    c.n.should.equal(500);
    await store.logReading('dev', 1, {}).should.be.rejectedWith(/closed/);
  });

  it('stores SQL-injection strings verbatim', async function () {
    const evil = ["x'); DROP TABLE devices; --", 'Robert"); DELETE FROM readings; --', "' OR '1'='1"];
    for (const [i, name] of evil.entries()) {
      await store.register({ deviceid: `d${i}`, ipaddr: '::1', ssid: name, name });
      await store.update(`d${i}`, { data: JSON.stringify({ k: name }) });
    }
    const { devices, total } = await store.list({ limit: 10, offset: 0 });
    total.should.equal(3);
    devices.map((d) => d.name).should.eql(evil);
    devices.map((d) => d.data.k).should.eql(evil);
    (await store.get("d0' OR '1'='1")) === undefined || should.fail();
  });

  it('replay state: atomic under concurrency and persisted across reopen', async function () {
    const results = await Promise.all(Array.from({ length: 100 }, () => store.checkReplay('dev', 7, 0)));
    results.filter((r) => r.accepted).length.should.equal(1);
    await store.close();
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite') });
    (await store.checkReplay('dev', 7, 0)).should.eql({ accepted: false, reason: 'replay' });
    (await store.checkReplay('dev', 8, 0)).accepted.should.be.true();
  });

  const stateRows = () => querySqlite(tmp.file('sub/dir/db.sqlite'), 'SELECT deviceid, top FROM replay_state ORDER BY deviceid');
  const readingRows = () => querySqlite(tmp.file('sub/dir/db.sqlite'), 'SELECT deviceid, seqn FROM readings ORDER BY id');

  it('persist with-next-write: the state commits in the same transaction as the device\'s next reading', async function () {
    await store.register({ deviceid: 'dev', ipaddr: '10.0.0.1', ssid: 'x' });
    const batches = [];
    await store.close();
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite'), onBatch: (n) => batches.push(n) });
    await store.ready();
    (await store.checkReplay('dev', 5, 0, 'with-next-write')).accepted.should.be.true();
    // Decided at once (a replay is rejected), but nothing written yet.
    (await store.checkReplay('dev', 5, 0, 'with-next-write')).should.eql({ accepted: false, reason: 'replay' });
    batches.should.eql([]);
    (await stateRows()).should.eql([]);
    (await store.logReading('dev', 5, { SEQN: 5 })).should.be.true();
    // One batch: the reading and its state together.
    batches.should.eql([2]);
    (await stateRows()).should.eql([{ deviceid: 'dev', top: 5 }]);
    (await readingRows()).should.eql([{ deviceid: 'dev', seqn: 5 }]);
  });

  it('persist with-next-write: a state no reading claims commits with a later batch, or on close', async function () {
    for (const deviceid of ['dev', 'lonely', 'quiet']) await store.register({ deviceid, ipaddr: '10.0.0.1', ssid: 'x' });
    (await store.checkReplay('lonely', 3, 0, 'with-next-write')).accepted.should.be.true();
    // It waits eight batches of other writes for its reading, then commits with the ninth. (After the eighth, the
    // batch loop may start the ninth with it on its own before the next write arrives: only the bounds are fixed.)
    for (let i = 0; i < 7; i++) await store.register({ deviceid: `b${i}`, ipaddr: '10.0.0.2', ssid: 'x' });
    (await stateRows()).should.eql([]);
    await store.register({ deviceid: 'b7', ipaddr: '10.0.0.2', ssid: 'x' });
    await store.register({ deviceid: 'c', ipaddr: '10.0.0.3', ssid: 'x' });
    (await stateRows()).should.eql([{ deviceid: 'lonely', top: 3 }]);
    (await store.checkReplay('quiet', 9, 0, 'with-next-write')).accepted.should.be.true();
    await store.close();
    (await stateRows()).should.eql([{ deviceid: 'lonely', top: 3 }, { deviceid: 'quiet', top: 9 }]);
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite') });
    (await store.checkReplay('quiet', 9, 0)).should.eql({ accepted: false, reason: 'replay' });
  });

  it('persist with-next-write: a reading for an unregistered id stores nothing, not even its state', async function () {
    (await store.checkReplay('stranger', 3, 0, 'with-next-write')).accepted.should.be.true();
    (await store.logReading('stranger', 3, { SEQN: 3 })).should.be.false();
    for (let i = 0; i < 10; i++) await store.register({ deviceid: `r${i}`, ipaddr: '10.0.0.2', ssid: 'x' });
    await store.close();
    (await stateRows()).should.eql([]);
    (await readingRows()).should.eql([]);
  });

  it('persist with-next-write: 100 identical numbers at once, exactly one accepted and one reading stored', async function () {
    await store.register({ deviceid: 'dev', ipaddr: '10.0.0.1', ssid: 'x' });
    const results = await Promise.all(Array.from({ length: 100 }, async () => {
      const r = await store.checkReplay('dev', 11, 0, 'with-next-write');
      if (r.accepted) await store.logReading('dev', 11, { SEQN: 11 });
      return r.accepted;
    }));
    results.filter(Boolean).length.should.equal(1);
    (await readingRows()).should.eql([{ deviceid: 'dev', seqn: 11 }]);
    (await stateRows()).should.eql([{ deviceid: 'dev', top: 11 }]);
  });

  it('keeps at most replayCacheMax windows in memory; evicted ones are read back and still reject replays', async function () {
    await store.close();
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite'), replayCacheMax: 50 });
    await store.ready();
    for (let i = 0; i < 500; i++) (await store.checkReplay(`d${i}`, 1, 0)).accepted.should.be.true();
    store.replayCacheSize.should.be.belowOrEqual(50);
    for (let i = 0; i < 500; i += 7) (await store.checkReplay(`d${i}`, 1, 0)).should.eql({ accepted: false, reason: 'replay' });
    // Deferred states are never evicted before they are written.
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.register({ deviceid: `e${i}`, ipaddr: '10.0.0.1', ssid: 'x' })));
    for (let i = 0; i < 200; i++) (await store.checkReplay(`e${i}`, 4, 0, 'with-next-write')).accepted.should.be.true();
    store.replayCacheSize.should.be.aboveOrEqual(200);
    for (let i = 0; i < 200; i++) (await store.checkReplay(`e${i}`, 4, 0, 'with-next-write')).accepted.should.be.false();
    await store.close();
    store = new SqliteStore({ file: tmp.file('sub/dir/db.sqlite'), replayCacheMax: 50 });
    for (let i = 0; i < 200; i += 13) (await store.checkReplay(`e${i}`, 4, 0)).accepted.should.be.false();
  });
});

const should = require('should');
