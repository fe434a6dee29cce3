'use strict';
/**
 * Scale-out, for real: `npm run cluster` with 3 Node-RED instances behind HAProxy, all on one PostgreSQL (a throwaway
 * server of the test's own, so it can be restarted). Devices speak the sealed protocol with per-device keys.
 */
require('should');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const lib = require('../../dist/nodes/lib');
const { requestJson } = require('../../dist/sim/device');
const { startPostgres } = require('../support/postgres');
const { startCluster } = require('../support/cluster');
const { sealed, registerSealed, pollSealed } = require('../support/device');
const { tempDir } = require('../support/tmp');
const { until } = require('../support/wait');

const KEY = crypto.randomBytes(16).toString('hex');
const TOKEN = crypto.randomBytes(16).toString('hex');
const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
const keyOf = (id) => ring.material(id);
const mac = (n) => `5C:CF:7F:C1:${String(Math.floor(n / 256)).padStart(2, '0')}:${(n % 256).toString(16).padStart(2, '0').toUpperCase()}`;

describe('scale-out: 3 instances behind HAProxy on one PostgreSQL', function () {
  this.timeout(600000);
  let pg;
  let dbUrl;
  let cluster;
  let tmp;
  const sql = (text, params) => pg.query(dbUrl, text, params);
  const op = (base, method, suffix, body) => requestJson(`${base}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });
  const reading = (base, id, SEQN, extra = {}) => requestJson(`${base}/api/devices/${encodeURIComponent(id)}/readings`, 'POST', sealed(keyOf(id), id, 'reading', { t: 21.5, SEQN, ack: 0, ...extra }));

  before(async function () {
    tmp = tempDir('esp-e2ee-cluster-');
    pg = await startPostgres();
    dbUrl = await pg.createDatabase('cluster');
    cluster = await startCluster({
      dataDir: tmp.dir,
      instances: 3,
      // Load tests send faster than a device should: the rate limits are the limits suite's subject.
      env: { E2EE_DATABASE_URL: dbUrl, E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_RATE_LIMIT: 'off', E2EE_LOG_LEVEL: 'warn' },
    });
  });
  afterEach(function () {
    // What the instances said, when a test failed (their warnings and errors).
    if (this.currentTest.state === 'failed' && cluster) console.log(cluster.output().split('\n').slice(-80).join('\n'));
  });
  after(async function () {
    await cluster?.stop();
    pg?.destroy();
    tmp?.cleanup();
  });

  it('every instance is healthy behind HAProxy and serves /healthz from the shared database', async function () {
    (await cluster.servers()).should.eql({ n1: 'UP', n2: 'UP', n3: 'UP' });
    for (const i of [1, 2, 3]) (await requestJson(`${cluster.instanceUrl(i)}/healthz`, 'GET')).body.should.eql({ status: 'OK', backend: 'postgresql' });
    (await requestJson(`${cluster.url}/healthz`, 'GET')).status.should.equal(200);
  });

  it('50 concurrent copies of one reading, spread over the instances: exactly one accepted and stored', async function () {
    const id = mac(1);
    (await registerSealed(cluster.url, keyOf(id), id, { SEQN: 1 })).status.should.equal(201);
    for (const SEQN of [2, 3, 4]) {
      const body = sealed(keyOf(id), id, 'reading', { t: SEQN, SEQN, ack: 0 });
      // Half straight to the instances (so all three decide at the same moment), half through the load balancer.
      const targets = Array.from({ length: 50 }, (_, i) => (i % 2 ? cluster.url : cluster.instanceUrl((i % 3) + 1)));
      const results = await Promise.all(targets.map((base) => requestJson(`${base}/api/devices/${encodeURIComponent(id)}/readings`, 'POST', body)));
      results.filter((r) => r.status === 200).length.should.equal(1);
      results.filter((r) => r.status === 400).length.should.equal(49);
    }
    (await sql('SELECT seqn FROM readings WHERE deviceid = $1 ORDER BY seqn', [id])).map((r) => Number(r.seqn)).should.eql([2, 3, 4]);
  });

  it('a command queued through one instance is delivered by a poll to another and acknowledged through a third', async function () {
    const id = mac(2);
    (await registerSealed(cluster.instanceUrl(1), keyOf(id), id, { SEQN: 1 })).status.should.equal(201);
    const queued = await op(cluster.instanceUrl(1), 'POST', `/${encodeURIComponent(id)}/commands`, { led: true });
    queued.status.should.equal(202);
    const poll = await pollSealed(cluster.instanceUrl(2), keyOf(id), id, 2);
    poll.status.should.equal(200);
    const answer = JSON.parse(lib.decryptEnvelope(keyOf(id), lib.parseEnvelope(poll.body), id, 'config').toString('utf8'));
    answer.re.should.equal(2);
    answer.commands.length.should.equal(1);
    const command = JSON.parse(lib.decryptEnvelope(keyOf(id), lib.parseEnvelope(answer.commands[0]), id, 'command').toString('utf8'));
    command.cmd.should.eql({ led: true });
    (await op(cluster.instanceUrl(3), 'GET', `/${encodeURIComponent(id)}/commands`)).body.map((c) => c.state).should.eql(['pending']);
    (await reading(cluster.instanceUrl(3), id, 3, { ack: command.SEQN })).status.should.equal(200);
    (await op(cluster.instanceUrl(1), 'GET', `/${encodeURIComponent(id)}/commands`)).body.map((c) => c.state).should.eql(['acknowledged']);
    // No longer offered, by any instance.
    const again = await pollSealed(cluster.instanceUrl(3), keyOf(id), id, 4);
    JSON.parse(lib.decryptEnvelope(keyOf(id), lib.parseEnvelope(again.body), id, 'config').toString('utf8')).commands.should.eql([]);
  });

  it('the Devices sidebar of every instance shows every device and its readings', async function () {
    const [total] = await sql('SELECT count(*) AS n FROM devices');
    for (const inst of cluster.state().instances) {
      const admin = `http://127.0.0.1:${inst.adminPort}`;
      const login = await requestJson(`${admin}/auth/token`, 'POST', { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: TOKEN });
      const auth = { authorization: `Bearer ${login.body.access_token}` };
      const list = await requestJson(`${admin}/esp-e2ee/devices?limit=200`, 'GET', undefined, auth);
      list.status.should.equal(200);
      list.body.total.should.equal(Number(total.n));
      list.body.devices.map((d) => d.deviceid).should.containEql(mac(1));
      const readings = await requestJson(`${admin}/esp-e2ee/devices/${encodeURIComponent(mac(1))}/readings`, 'GET', undefined, auth);
      readings.body.map((r) => r.seqn).should.eql([4, 3, 2]);
    }
  });

  it('20 simulated devices for 60 s through the load balancer: no duplicates stored, no false rejections', async function () {
    const out = execFileSync(process.execPath, ['dist/sim/cli.js', '--url', cluster.url, '--key', KEY, '--state', tmp.file('sim.json'), '--prefix', '5CCF80', '--devices', '20', '--interval', '0.5', '--duration', '60', '--quiet'], {
      cwd: require('node:path').resolve(__dirname, '..', '..'),
      encoding: 'utf8',
      timeout: 120000,
    });
    const summary = /summary after \d+ s, 20 device\(s\): sent (\d+), accepted (\d+), rejected (\d+)/.exec(out);
    if (!summary) throw new Error(`no summary:\n${out}`);
    const [sent, accepted, rejected] = summary.slice(1).map(Number);
    rejected.should.equal(0);
    sent.should.be.above(20 * 60); // two a second each, give or take
    const [stored] = await sql("SELECT count(*) AS n, count(DISTINCT (deviceid, seqn)) AS distinct_n FROM readings WHERE deviceid LIKE '5C:CF:80:%'");
    Number(stored.n).should.equal(Number(stored.distinct_n));
    // Every accepted reading is stored. A reading in flight when the simulator stops is stored without its answer
    // being counted: at most one per device.
    Number(stored.n).should.be.within(accepted, Math.min(sent, accepted + 20));
    // Spread over all three instances.
    (await cluster.servers()).should.eql({ n1: 'UP', n2: 'UP', n3: 'UP' });
  });

  /**
   * Load: `devices` devices each sending readings back to back through the load balancer until stop() (a device
   * retries a reading that got no 200 with its next SEQN, as the firmware does). Every 200 is recorded.
   */
  function load(prefix, devices) {
    const acknowledged = [];
    const statuses = new Map();
    let running = true;
    const one = async (n) => {
      const id = `${prefix}:${String(n).padStart(2, '0')}`;
      let SEQN = 1;
      while (running) {
        const r = await registerSealed(cluster.url, keyOf(id), id, { SEQN: SEQN++ }).catch(() => ({ status: 0 }));
        if (r.status === 200 || r.status === 201) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      while (running) {
        const seq = SEQN++;
        const r = await reading(cluster.url, id, seq).catch(() => ({ status: 0 }));
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 200) acknowledged.push({ id, seq, at: Date.now() });
        else await new Promise((res) => setTimeout(res, 50));
      }
    };
    const all = Promise.all(Array.from({ length: devices }, (_, n) => one(n)));
    return {
      acknowledged,
      statuses,
      async stop() {
        running = false;
        await all;
      },
    };
  }

  async function allStored(acknowledged) {
    const ids = [...new Set(acknowledged.map((a) => a.id))];
    const rows = await sql('SELECT deviceid, seqn FROM readings WHERE deviceid = ANY($1::text[])', [ids]);
    const stored = new Set(rows.map((r) => `${r.deviceid}/${r.seqn}`));
    return acknowledged.filter((a) => !stored.has(`${a.id}/${a.seq}`));
  }

  it('kill -9 of one instance under load: no acknowledged reading lost, the others keep serving, HAProxy takes it out and back in', async function () {
    const before = cluster.state().instances.find((i) => i.index === 2);
    const traffic = load('5C:CF:7F:C2:00', 10);
    await until('200 readings acknowledged', () => traffic.acknowledged.length > 200, 30000);
    process.kill(before.pid, 'SIGKILL');
    const killedAt = Date.now();
    await until('HAProxy to take n2 out', async () => (await cluster.servers()).n2 !== 'UP', 20000);
    const servedWhileDown = traffic.acknowledged.length;
    await new Promise((r) => setTimeout(r, 2000));
    (traffic.acknowledged.length - servedWhileDown).should.be.above(20);
    // The cluster starts it again; HAProxy puts it back once its health check passes.
    await until('HAProxy to put n2 back', async () => (await cluster.servers()).n2 === 'UP', 90000);
    cluster.state().instances.find((i) => i.index === 2).pid.should.not.equal(before.pid);
    const lateCount = traffic.acknowledged.length;
    await until('100 more readings', () => traffic.acknowledged.length > lateCount + 100, 30000);
    await traffic.stop();
    traffic.acknowledged.filter((a) => a.at > killedAt).length.should.be.above(100);
    (await allStored(traffic.acknowledged)).should.eql([]);
    const [dup] = await sql("SELECT count(*) - count(DISTINCT (deviceid, seqn)) AS n FROM readings WHERE deviceid LIKE '5C:CF:7F:C2:%'");
    Number(dup.n).should.equal(0);
  });

  it('PostgreSQL restarts under load: 503s while it is down, recovery without restarting Node-RED, nothing acknowledged lost', async function () {
    const pids = cluster.state().instances.map((i) => i.pid);
    const traffic = load('5C:CF:7F:C3:00', 10);
    await until('200 readings acknowledged', () => traffic.acknowledged.length > 200, 30000);
    pg.stop('fast');
    const downAt = Date.now();
    // While it is down: the instances answer 503 (or, once every health check failed, HAProxy does).
    const during = await requestJson(`${cluster.url}/api/devices/${encodeURIComponent('5C:CF:7F:C3:00:01')}/readings`, 'POST', sealed(keyOf('5C:CF:7F:C3:00:01'), '5C:CF:7F:C3:00:01', 'reading', { SEQN: 10 ** 9, ack: 0 }));
    during.status.should.equal(503);
    await new Promise((r) => setTimeout(r, 3000));
    pg.start();
    const upAt = Date.now();
    await until('a reading acknowledged after the restart', () => traffic.acknowledged.some((a) => a.at > upAt), 60000);
    await until('every instance UP', async () => Object.values(await cluster.servers()).every((s) => s === 'UP'), 60000);
    const count = traffic.acknowledged.length;
    await until('100 more readings', () => traffic.acknowledged.length > count + 100, 30000);
    await traffic.stop();
    (traffic.statuses.get(503) ?? 0).should.be.above(0);
    // No 200 was given while the database was down.
    traffic.acknowledged.filter((a) => a.at > downAt + 200 && a.at < upAt - 200).should.eql([]);
    (await allStored(traffic.acknowledged)).should.eql([]);
    // Node-RED was not restarted.
    cluster.state().instances.map((i) => i.pid).should.eql(pids);
  });
});
