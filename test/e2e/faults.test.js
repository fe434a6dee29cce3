'use strict';
/**
 * Storage faults under `npm start`: a full disk, a database file that cannot be written, and a database locked by
 * another process. Each gives one clear log line and 503 with Retry-After (never a 500), keeps nothing half-written
 * (every acknowledged reading is stored, no refused one is), and recovers without a restart once the fault is gone.
 * The faults are real: a loop-mounted ext4 file system of the test's own (filled up; files made immutable) and a
 * second process holding SQLite's write lock.
 */
require('should');
const crypto = require('node:crypto');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startBackend } = require('../support/backend');
const { until } = require('../support/wait');
const { tempDir, querySqlite } = require('../support/tmp');
const { mountLoop, loopUnavailable } = require('../support/loopfs');
const lib = require('../../dist/nodes/lib');
const { requestJson } = require('../../dist/sim/device');
const { registerSealed, pollSealed } = require('../support/device');



describe('storage faults: full disk, read-only file, locked database', function () {
  this.timeout(180000);
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
  const env = { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'info', E2EE_RATE_LIMIT: 'off' };
  const MAC = '5C:CF:7F:EE:00:01';
  // About 2 KB a reading, so the write-ahead log must grow soon once the disk is full.
  const pad = 'x'.repeat(2000);

  /** Posts readings with fresh SEQNs; returns every answer, with the SEQN it carried. */
  function poster(backend, start) {
    let seqn = start;
    const post = async (n) => {
      const answers = [];
      for (let i = 0; i < n; i++) {
        seqn++;
        const wire = lib.encryptToWire(ring.material(MAC), Buffer.from(JSON.stringify({ data: { pad }, SEQN: seqn })), MAC);
        const r = await requestJson(`${backend.url}/api/devices/${encodeURIComponent(MAC)}/readings`, 'POST', wire);
        answers.push({ seqn, status: r.status, body: r.body, retry: r.headers?.['retry-after'] });
      }
      return answers;
    };
    /** A SEQN for another uplink (a registration or poll shares the readings' sequence). */
    post.take = () => ++seqn;
    return post;
  }

  async function checkStored(db, answers) {
    const stored = new Set((await querySqlite(db, 'SELECT seqn FROM readings WHERE deviceid = ?', [MAC])).map((r) => r.seqn));
    const acked = answers.filter((a) => a.status === 200).map((a) => a.seqn);
    const refused = answers.filter((a) => a.status === 503).map((a) => a.seqn);
    acked.filter((s) => !stored.has(s)).should.eql([], 'acknowledged readings lost');
    refused.filter((s) => stored.has(s)).should.eql([], 'readings answered 503 but stored (half-written)');
    (await querySqlite(db, 'PRAGMA integrity_check'))[0].integrity_check.should.equal('ok');
  }

  describe('on a file system of the test\'s own', function () {
    let loop;
    let backend;
    let db;
    before(function () {
      const why = loopUnavailable();
      // CI runs as root and must run these; a developer without root sees why they are skipped.
      if (why && process.env.CI !== 'true') this.skip();
      if (why) throw new Error(`storage fault tests need loop mounts: ${why}`);
      loop = mountLoop(16);
    });
    after(async function () {
      if (backend) await backend.stop();
      if (loop) loop.cleanup();
    });

    it('full disk: one clear log line, 503 with Retry-After, nothing half-written, recovery once space is freed', async function () {
      const dataDir = path.join(loop.dir, 'data');
      backend = await startBackend({ dataDir, env });
      db = path.join(dataDir, 'node-red', 'esp-e2ee.sqlite');
      const post = poster(backend, 0);
      (await registerSealed(backend.url, ring.material(MAC), MAC, { SEQN: post.take() })).status.should.equal(201);
      const answers = await post(20);
      answers.every((a) => a.status === 200).should.be.true();
      loop.fill();
      // Until the write-ahead log has to grow, commits still fit in its old space; then they fail.
      for (let i = 0; i < 200 && !answers.some((a) => a.status === 503); i++) answers.push(...(await post(10)));
      const refused = answers.filter((a) => a.status === 503);
      refused.length.should.be.above(0);
      for (const a of refused) {
        a.body.should.eql({ status: 'NOK', message: 'Storage unavailable, retry later' });
        a.retry.should.equal('5');
      }
      answers.every((a) => a.status === 200 || a.status === 503).should.be.true('only 200 or 503');
      // The register and the config poll say the same.
      (await registerSealed(backend.url, ring.material(MAC), MAC, { SEQN: post.take() })).status.should.equal(503);
      const lines = backend.output.split('\n').filter((l) => /Device store unavailable/.test(l));
      lines.length.should.equal(1);
      lines[0].should.match(/SQLITE_FULL.*disk holding the database is full/);
      backend.output.should.not.match(/\[error\](?!.*Device store unavailable)/);
      loop.free();
      await until('a reading accepted again', async () => (await post(1))[0].status === 200, 30000);
      answers.push(...(await post(5)));
      answers.slice(-5).every((a) => a.status === 200).should.be.true();
      await until('the recovery logged', () => /Device store available again/.test(backend.output));
      await backend.stop();
      backend = undefined;
      await checkStored(db, answers);
    });

    it('a database file that cannot be written (immutable): 503, then recovery once it can', async function () {
      const dataDir = path.join(loop.dir, 'data');
      backend = await startBackend({ dataDir, env });
      const post = poster(backend, 100000);
      const answers = await post(3);
      answers.map((a) => a.status).should.eql([200, 200, 200], JSON.stringify(answers.map((a) => a.body)) + backend.output);
      const files = [db, `${db}-wal`];
      loop.immutable(files, true);
      try {
        for (let i = 0; i < 50 && !answers.some((a) => a.status === 503); i++) answers.push(...(await post(5)));
        answers.filter((a) => a.status === 503).length.should.be.above(0);
        answers.every((a) => a.status === 200 || a.status === 503).should.be.true('only 200 or 503');
        backend.output.should.match(/Device store unavailable \(SQLITE_(IOERR|READONLY)\)/);
      } finally {
        loop.immutable(files, false);
      }
      await until('a reading accepted again', async () => (await post(1))[0].status === 200, 30000);
      await backend.stop();
      backend = undefined;
      await checkStored(db, answers);
    });
  });

  describe('a database locked by another process', function () {
    let tmp;
    let backend;
    let locker;
    before(() => { tmp = tempDir('esp-e2ee-locked-'); });
    after(async function () {
      if (backend) await backend.stop();
      if (locker) locker.kill('SIGKILL');
      tmp.cleanup();
    });

    it('bounded retries (the busy timeout), then 503; served again without a restart once the lock is gone', async function () {
      backend = await startBackend({ dataDir: tmp.dir, env });
      (await registerSealed(backend.url, ring.material(MAC), MAC, { SEQN: 0 })).status.should.equal(201);
      await backend.stop();
      const db = path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite');
      // Another process takes SQLite's write lock and holds it.
      locker = spawn(process.execPath, ['-e', `
        const sqlite3 = require('sqlite3');
        const db = new sqlite3.Database(${JSON.stringify(db)});
        db.exec('BEGIN IMMEDIATE', (err) => { if (err) throw err; console.log('locked'); });
        process.stdin.on('data', () => db.exec('COMMIT', () => { console.log('released'); db.close(() => process.exit(0)); }));
      `], { cwd: path.resolve(__dirname, '..', '..'), stdio: ['pipe', 'pipe', 'inherit'] });
      let lockerOut = '';
      locker.stdout.on('data', (c) => { lockerOut += c; });
      await until('the lock taken', () => lockerOut.includes('locked'));
      backend = await startBackend({ dataDir: tmp.dir, env });
      const started = Date.now();
      const post = poster(backend, 0);
      const [first] = await post(1);
      first.status.should.equal(503);
      // Not at once: SQLite retried for its busy timeout (5 s, started when the flows did) first.
      (Date.now() - started).should.be.above(2000);
      const [again] = await post(1);
      again.status.should.equal(503);
      (await pollSealed(backend.url, ring.material(MAC), MAC, post.take())).status.should.equal(503);
      backend.output.should.match(/Device store unavailable \(SQLITE_BUSY\).*Another process holds a lock/);
      locker.stdin.write('release\n');
      await until('the lock released', () => lockerOut.includes('released'));
      const answers = [first, again];
      await until('a reading accepted again', async () => {
        const [a] = await post(1);
        answers.push(a);
        return a.status === 200;
      });
      await until('the recovery logged', () => /Device store available again/.test(backend.output));
      await backend.stop();
      backend = undefined;
      await checkStored(db, answers);
    });
  });
});
