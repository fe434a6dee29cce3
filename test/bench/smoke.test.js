'use strict';
/**
 * The benchmarks' smoke run (`node bench/run.js --smoke`): every benchmark runs for a few seconds, so none
 * of them can rot. Its figures mean nothing on a shared machine and are not asserted; what is asserted is
 * that each benchmark produced its figures, that every acknowledged reading was stored exactly once, and
 * that the chart was drawn.
 */
require('should');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { tempDir } = require('../support/tmp');

const root = path.resolve(__dirname, '..', '..');

describe('benchmarks: smoke run of npm run bench', function () {
  this.timeout(600000);
  let tmp;
  let report;
  before(function () {
    tmp = tempDir('esp-e2ee-bench-smoke-');
    execFileSync(process.execPath, [path.join(root, 'bench', 'run.js'), '--smoke', '--out', tmp.file('results.json'), '--svg', tmp.file('chart.svg')], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    report = JSON.parse(fs.readFileSync(tmp.file('results.json'), 'utf8'));
  });
  after(() => tmp && tmp.cleanup());

  it('runs every benchmark and reports the figures of the table', function () {
    report.smoke.should.be.true();
    Object.keys(report.results).sort().should.eql(['drift', 'energy', 'firmware', 'http', 'keyring', 'mqtt', 'nodes', 'registry', 'scaleout', 'store']);
    const names = report.figures.map((f) => f.figure);
    for (const f of ['readings route (hmac-sha256) / bare, same runtime', 'readings route (hmac) / durable peer pipeline', 'group-commit ingest (device-registry log)', 'firmware lib/ text (xtensa-lx106, -Os)', '  route cut after log: CPU / bare\'s', '  three switch nodes where the function node is: CPU / bare\'s']) names.should.containEql(f);
    for (const f of report.figures) (Number.isFinite(f.value) && f.value > 0).should.be.true(`${f.figure}: ${f.value}`);
  });

  it('every reading answered 2xx by a storing pipeline is stored, none twice', function () {
    for (const [name, s] of Object.entries(report.results.http.stored)) {
      s.n.should.be.aboveOrEqual(s.ok, name);
      s.d.should.equal(s.n, name);
      s.ok.should.be.above(0, name);
    }
  });

  it('MQTT: every reading sent through the MQTT and HTTP paths is stored once; commands are acknowledged over both', function () {
    const m = report.results.mqtt;
    m.stored.sent.should.be.above(0);
    m.stored.n.should.equal(m.stored.sent);
    m.stored.distinct.should.equal(m.stored.n);
    for (const t of ['mqtt', 'http']) m.latency[t].n.should.equal(3);
  });

  it('energy: the sleeper makes one exchange a wake over both transports, and the model\'s goals are met', function () {
    const e = report.results.energy;
    for (const t of ['http', 'mqtt']) {
      e[t].wakes.should.equal(6);
      e[t].maxExchanges.should.equal(1);
      e[t].firstWake.exchanges.should.equal(2);
      e[t].fast.awake.should.be.belowOrEqual(1);
      e[t].fast.rows[2].days.should.be.aboveOrEqual(365);
    }
  });

  it('scale-out: every reading answered 2xx is stored once, on SQLite, on PostgreSQL and through HAProxy', function () {
    const s = report.results.scaleout;
    const all = [...Object.entries(s.one.stored), ...s.balanced.map((b) => [`${b.instances} instance(s)`, b.stored])];
    all.length.should.equal(4);
    for (const [name, st] of all) {
      st.ok.should.be.above(0, name);
      st.n.should.be.aboveOrEqual(st.ok, name);
      st.d.should.equal(st.n, name);
    }
    s.one.work.statementsPerReading.should.be.above(0);
  });

  it('draws the chart of ratios to bare', function () {
    const svg = fs.readFileSync(tmp.file('chart.svg'), 'utf8');
    svg.should.startWith('<svg');
    for (const name of Object.keys(report.results.http.rows)) svg.should.containEql(name.replace(/&/g, '&amp;'));
  });
});
