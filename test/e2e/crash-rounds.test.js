'use strict';
/**
 * kill -9 at random points under load, 20 rounds on one data dir: readings from several devices and commands
 * from an operator, as fast as the backend answers. After every round nothing acknowledged is lost: each reading
 * that got 200 and each command that got 202 is in the database, none twice, and PRAGMA integrity_check passes.
 * The kill points come from a seeded generator (E2EE_CRASH_SEED to repeat a run; E2EE_CRASH_ROUNDS to change 20).
 * It runs in both durability modes (E2EE_DURABILITY power and process): a kill -9 is a crash of the process, which
 * neither may lose anything acknowledged to.
 */
require('should');
const crypto = require('node:crypto');
const path = require('node:path');
const { startBackend } = require('../support/backend');
const { tempDir, querySqlite } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { SimDevice, requestJson } = require('../../dist/sim/device');
const { StateFile } = require('../../dist/sim/state');

const { seeded: random } = require('../support/random');

for (const durability of ['power', 'process']) describe(`crash rounds: kill -9 at random points under load, 20 rounds (E2EE_DURABILITY=${durability})`, function () {
  this.timeout(600000);
  const ROUNDS = Number(process.env.E2EE_CRASH_ROUNDS || 20);
  const SEED = Number(process.env.E2EE_CRASH_SEED || 20261126);
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const ring = new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256');
  const env = { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: durability === 'process' ? 'info' : 'warn', E2EE_RATE_LIMIT: 'off', E2EE_DURABILITY: durability };
  const script = path.resolve(__dirname, '..', '..', 'scripts', 'start.js');
  let tmp;
  before(() => { tmp = tempDir('esp-e2ee-crash-rounds-'); });
  after(() => tmp.cleanup());

  it(`loses no acknowledged reading or command, stores none twice, and keeps the file intact (seed ${SEED})`, async function () {
    const rand = random(SEED);
    const db = path.join(tmp.dir, 'node-red', 'esp-e2ee.sqlite');
    const state = new StateFile(path.join(tmp.dir, 'sim.json'));
    const ackedReadings = [];
    const ackedCommands = [];
    let port;
    let cutOff = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const backend = await startBackend({ script, dataDir: tmp.dir, env, port });
      port = backend.port;
      // The mode is in force: the store says so when it is process (and says nothing of it when power).
      if (round === 0) (/Durability: process/.test(backend.output)).should.equal(durability === 'process', backend.output.slice(-2000));
      const sims = [];
      for (let i = 0; i < 5; i++) {
        const id = `5C:CF:7F:FF:00:${String(i).padStart(2, '0')}`;
        const d = new SimDevice({ id, baseUrl: backend.url, key: ring.material(id), state, interval: 1 });
        if (round === 0) (await d.register()).status.should.equal(201);
        sims.push(d);
      }
      let killed = false;
      const readers = sims.map(async (d) => {
        while (!killed) {
          try {
            const r = await d.postReading();
            if (r.status === 200) ackedReadings.push(`${d.id}/${r.seqn}`);
          } catch {
            cutOff++;
            return;
          }
        }
      });
      const operator = (async () => {
        for (let n = 0; !killed; n++) {
          const d = sims[n % sims.length];
          try {
            const r = await requestJson(`${backend.url}/api/devices/${encodeURIComponent(d.id)}/commands`, 'POST', { led: n % 2 === 0 }, { authorization: `Bearer ${TOKEN}` });
            if (r.status === 202) ackedCommands.push(`${d.id}/${r.body.seqn}`);
          } catch {
            return;
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 200 + Math.floor(rand() * 1300)));
      await backend.kill();
      killed = true;
      await Promise.all([...readers, operator]);
      (await querySqlite(db, 'PRAGMA integrity_check'))[0].integrity_check.should.equal('ok', `round ${round}`);
    }
    const backend = await startBackend({ script, dataDir: tmp.dir, env, port });
    try {
      const readings = (await querySqlite(db, 'SELECT deviceid, seqn FROM readings')).map((r) => `${r.deviceid}/${r.seqn}`);
      const stored = new Set(readings);
      readings.length.should.equal(stored.size, 'a reading stored twice');
      const lostReadings = ackedReadings.filter((a) => !stored.has(a));
      lostReadings.should.eql([], `${lostReadings.length} of ${ackedReadings.length} acknowledged readings lost`);
      const commands = new Set((await querySqlite(db, 'SELECT deviceid, seqn FROM commands')).map((r) => `${r.deviceid}/${r.seqn}`));
      const lostCommands = ackedCommands.filter((c) => !commands.has(c));
      lostCommands.should.eql([], `${lostCommands.length} of ${ackedCommands.length} acknowledged commands lost`);
      new Set(ackedCommands).size.should.equal(ackedCommands.length, 'a command SEQN handed out twice');
      ackedReadings.length.should.be.above(ROUNDS * 10);
      ackedCommands.length.should.be.above(ROUNDS);
      console.log(`      ${ROUNDS} rounds: ${ackedReadings.length} readings and ${ackedCommands.length} commands acknowledged, all stored (${stored.size} readings stored, ${cutOff} requests cut off by the kills)`);
      // Served again after the last kill.
      const d = new SimDevice({ id: '5C:CF:7F:FF:00:00', baseUrl: backend.url, key: ring.material('5C:CF:7F:FF:00:00'), state, interval: 1 });
      (await d.postReading()).status.should.equal(200);
    } finally {
      await backend.stop();
    }
  });
});
