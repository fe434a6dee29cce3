#!/usr/bin/env node
/**
 * `npm run bench`: every benchmark, one after another (never two at once: they share the machine), each in
 * its own process. Prints one table of figures, each a ratio measured within one run where it compares,
 * writes bench/results.json and the chart docs/benchmarks.svg (bench/chart.js).
 *
 * Usage: node bench/run.js [--smoke] [--out FILE] [--svg FILE] [--only http,nodes,mqtt,keyring,store,registry,drift,firmware,energy,scaleout]
 *   --smoke: a few seconds each, so the benchmarks cannot rot (the test command runs this); its figures
 *            mean nothing.
 *   --merge FILE: start from that report's results and replace those of the benchmarks run now (with --only, after a
 *            change that touches only their paths); the report records which came from which run (`runs`).
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { fmt } = require('./lib/runtime');
const { writeChart } = require('./chart');

const root = path.resolve(__dirname, '..');
const smoke = process.argv.includes('--smoke');
const opt = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};

const BENCHES = {
  firmware: { file: 'firmware.js', full: [], smoke: [] },
  nodes: { file: 'nodes.js', full: ['--messages', '20000', '--rounds', '7'], smoke: ['--messages', '1000', '--rounds', '1'] },
  store: { file: 'store.js', full: ['--messages', '50000', '--rounds', '5'], smoke: ['--messages', '2000', '--rounds', '1', '--devices', '100', '--in-flight', '100'] },
  http: { file: 'http.js', full: ['--duration', '2', '--rounds', '20', '--stages'], smoke: ['--duration', '1', '--rounds', '1', '--stages'] },
  registry: { file: 'registry.js', full: ['--devices', '100000', '--samples', '1000'], smoke: ['--devices', '300', '--samples', '30'] },
  drift: { file: 'drift.js', full: ['--seconds', '60', '--bare', '5'], smoke: ['--seconds', '2', '--bare', '1'] },
  mqtt: { file: 'mqtt.js', full: ['--messages', '5000', '--rounds', '5', '--commands', '50'], smoke: ['--messages', '300', '--rounds', '1', '--commands', '3'] },
  keyring: { file: 'keyring.js', full: ['--ids', '2000', '--rounds', '21'], smoke: ['--ids', '100', '--rounds', '3'] },
  energy: { file: 'energy.js', full: ['--wakes', '40', '--write', 'docs/energy.md'], smoke: ['--wakes', '6'] },
  scaleout: { file: 'scaleout.js', full: ['--duration', '10', '--rounds', '3', '--instances', '3'], smoke: ['--duration', '1', '--rounds', '1', '--instances', '2'] },
};

function runBench(name) {
  const b = BENCHES[name];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, b.file), '--json', ...(smoke ? b.smoke : b.full)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
      if (code !== 0 || !line) return reject(new Error(`bench ${name} failed (exit ${code}):\n${out}`));
      resolve(JSON.parse(line.slice('BENCH_RESULT '.length)));
    });
  });
}

/** The table: [figure, value, goal, met?]. Ratios are within one run; absolute figures depend on the machine. */
function figures(r) {
  const rows = [];
  const add = (figure, value, text, goal, met) => rows.push({ figure, value, text, goal: goal ?? '', met: met ?? null });
  const x = (v) => `${v.toFixed(2)}x`;
  if (r.http) {
    const h = r.http.rows;
    const hm = h['readings (hmac-sha256)'];
    add('readings route (hmac-sha256): CPU per reading / bare\'s', hm.cpuToBare, `${hm.cpuToBare.toFixed(2)} (${hm.cpuUs.toFixed(0)} vs ${h.bare.cpuUs.toFixed(0)} µs; rounds ${hm.cpuToBareSpread.min.toFixed(2)}-${hm.cpuToBareSpread.max.toFixed(2)})`, '<= 1.25', hm.cpuToBare <= 1.25);
    if (r.http.stages) {
      // What each stage of the route adds to bare's CPU per reading (routes cut after it, same runtime and rounds).
      let before = 1;
      for (const [name, row] of Object.entries(r.http.stages)) {
        if (name === 'three switches') continue;
        add(`  route cut after ${name.replace(/^\+ /, '')}: CPU / bare's`, row.cpuToBare, `${row.cpuToBare.toFixed(2)} (+${(row.cpuToBare - before).toFixed(2)})`);
        before = row.cpuToBare;
      }
      const sw = r.http.stages['three switches'];
      add('  three switch nodes where the function node is: CPU / bare\'s', sw.cpuToBare, `${sw.cpuToBare.toFixed(2)} (+${(sw.cpuToBare - r.http.stages['+ log'].cpuToBare).toFixed(2)} after the log, the function node +${(r.http.stages['+ answer'].cpuToBare - r.http.stages['+ log'].cpuToBare).toFixed(2)})`);
    }
    add('readings route (hmac-sha256) / bare, same runtime', hm.ratioToBare, hm.ratioToBare.toFixed(2), '>= 0.8', hm.ratioToBare >= 0.8);
    add('machine noise: bare route req/s across rounds', h.bare.rpsSpread.max / Math.max(h.bare.rpsSpread.min, 1), `${fmt(h.bare.rpsSpread.min)}-${fmt(h.bare.rpsSpread.max)} req/s (quartiles ${fmt(h.bare.rpsSpread.q1)}-${fmt(h.bare.rpsSpread.q3)})`);
    add('durable peer CPU per reading / ours', r.http.peerCpuVsReadings, x(r.http.peerCpuVsReadings));
    add('readings route (auth none) / bare, same runtime', h['readings (auth none)'].ratioToBare, h['readings (auth none)'].ratioToBare.toFixed(2));
    add('readings route (hmac) / durable peer pipeline', r.http.readingsVsPeerDurable, x(r.http.readingsVsPeerDurable), '>= 5x', r.http.readingsVsPeerDurable >= 5);
    add('readings route p99 / bare p99', hm.p99ToBare, hm.p99ToBare.toFixed(2), '<= 1.3', hm.p99ToBare <= 1.3);
    for (const [name, row] of Object.entries(h)) add(`HTTP ${name}`, row.rps, `${fmt(row.rps)} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, ${row.ratioToBare.toFixed(2)} of bare`);
    for (const [name, s] of Object.entries(r.http.stored)) add(`stored rows, ${name}`, s.n, `${fmt(s.n)} rows, ${fmt(s.ok)} answered 2xx, ${fmt(s.sent)} sent, ${fmt(s.d)} distinct`, '>= 2xx, no duplicates', s.n >= s.ok && s.n === s.d);
  }
  if (r.nodes) {
    const n = r.nodes.results;
    const goals = { 'decrypt passphrase': 8, 'decrypt key/IV': 12 };
    for (const [name, s] of Object.entries(n)) {
      add(`aes-${name.replace(' ', ' / peer, ')}`, s.ratio, `${x(s.ratio)} (${fmt(s.ours)} vs ${fmt(s.peer)} msgs/s)`, goals[name] ? `>= ${goals[name]}x` : '', goals[name] ? s.ratio >= goals[name] : null);
    }
  }
  if (r.mqtt) {
    const m = r.mqtt;
    add('MQTT path (shipped flow) / bare mqtt in, same broker and runtime', m.mqttToBare, m.mqttToBare.toFixed(2), '>= 0.8', m.mqttToBare >= 0.8);
    add('MQTT path / durable peer (crypto-js, context, sqlite)', m.mqttToPeer, x(m.mqttToPeer), '>= 5x', m.mqttToPeer >= 5);
    for (const [name, rate] of Object.entries(m.rates)) add(`MQTT ${name}`, rate, `${fmt(rate)} readings/s`);
    add('MQTT path / HTTP path (readings POSTed 50 at a time)', m.mqttToHttp, x(m.mqttToHttp));
    for (const [t, l] of Object.entries(m.latency)) add(`command to acknowledgement over ${t === 'mqtt' ? 'MQTT' : 'HTTP, polling every 1 s'}`, l.p50, `p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms (${l.n} commands)`);
    add('stored rows, MQTT path', m.stored.n, `${fmt(m.stored.n)} rows, ${fmt(m.stored.sent)} sent, ${fmt(m.stored.distinct)} distinct`, '= sent, no duplicates', m.stored.n === m.stored.sent && m.stored.n === m.stored.distinct);
  }
  if (r.keyring) {
    const k = r.keyring;
    add('keyring: never-seen id / busy id, time per message', k.unknownToKnown, `${k.unknownToKnown.toFixed(3)} (${(k.knownNs / 1000).toFixed(1)} vs ${(k.unknownNs / 1000).toFixed(1)} µs; a cache made it +190 µs)`, '0.9 to 1.1', k.unknownToKnown >= 0.9 && k.unknownToKnown <= 1.1);
    add('keyring: rekeyed device, time per message', k.rekeyedNs, `${(k.rekeyedNs / 1000).toFixed(1)} µs (key unwrapped); completing a rekey ${(k.completeRekeyNs / 1000).toFixed(0)} µs`);
  }
  if (r.store) {
    const s = r.store;
    add('group-commit ingest (device-registry log)', s.log, `${fmt(s.log)} readings/s (${(s.log / s.baseline).toFixed(2)} of a change node)`, '>= 60,000/s', s.log >= 60000);
    add('replay-guard decisions, 1,000 devices (persist before-send)', s.replay, `${fmt(s.replay)} msgs/s (${(s.replay / s.baseline).toFixed(2)} of a change node)`, '>= 120,000/s', s.replay >= 120000);
    add('replay-guard (with-next-write) + log, 1,000 devices', s.replayThenLog, `${fmt(s.replayThenLog)} readings/s`);
    if (s.durability) {
      const d = s.durability;
      add('durability process / power, readings under load', d.loaded.process / d.loaded.power, `${(d.loaded.process / d.loaded.power).toFixed(2)}x (${fmt(d.loaded.process)} vs ${fmt(d.loaded.power)} readings/s)`);
      add('durability process / power, one reading at a time', d.serial.process / d.serial.power, `${(d.serial.process / d.serial.power).toFixed(2)}x (${fmt(d.serial.process)} vs ${fmt(d.serial.power)} readings/s, each waiting for its commit)`);
    }
    add('group commit batch size', s.groupCommit.meanBatch, `mean ${s.groupCommit.meanBatch.toFixed(0)}, largest ${fmt(s.groupCommit.largestBatch)} writes per transaction`);
  }
  if (r.registry) {
    const g = r.registry;
    add(`config poll at ${fmt(g.devices)} devices, p99`, g.poll.p99, `p50 ${g.poll.p50.toFixed(2)} ms, p99 ${g.poll.p99.toFixed(2)} ms`, '< 5 ms', g.poll.p99 < 5);
    add(`register at ${fmt(g.devices)} devices`, g.register.p99, `p50 ${g.register.p50.toFixed(2)} ms, p99 ${g.register.p99.toFixed(2)} ms`);
    add(`list page (50) at ${fmt(g.devices)} devices`, g.list.p99, `p50 ${g.list.p50.toFixed(2)} ms, p99 ${g.list.p99.toFixed(2)} ms`);
    add(`RSS of Node-RED at ${fmt(g.devices)} devices`, g.rssMb, `${g.rssMb.toFixed(0)} MB (${g.rssMbEmpty.toFixed(0)} MB with none)`, '< 200 MB', g.rssMb < 200);
  }
  if (r.drift) {
    const d = r.drift;
    add(`bare route after / before ${fmt(d.readings)} readings`, d.bareRatio, d.bareRatio.toFixed(2), 'no drift (~1)', d.bareRatio >= 0.9);
    add('readings/s, last / first tenth of the sustained load', d.readingsRatio, d.readingsRatio.toFixed(2), 'no drift (~1)', d.readingsRatio >= 0.9);
    add('RSS before / after the sustained load', d.rssAfterMb, `${d.rssBeforeMb.toFixed(0)} MB / ${d.rssAfterMb.toFixed(0)} MB`);
  }
  if (r.scaleout) {
    const s = r.scaleout;
    const w = s.one.work;
    add('readings/s, one instance: PostgreSQL / SQLite, same run', s.one.ratio, `${s.one.ratio.toFixed(2)} (${fmt(s.one.postgresql)} vs ${fmt(s.one.sqlite)} readings/s)`, '>= 0.7', s.one.ratio >= 0.7);
    add('PostgreSQL statements (round trips) per reading', w.statementsPerReading, `${w.statementsPerReading.toFixed(2)}, ${w.commitsPerReading.toFixed(2)} commits; batches: readings ${w.readingBatch.toFixed(1)}, uplink decisions ${w.replayBatch.toFixed(1)}`);
    add('CPU per reading: PostgreSQL / Node-RED', w.pgCpuPerReadingMs, `${w.pgCpuPerReadingMs.toFixed(3)} ms / ${w.nodeCpuPerReadingMs.toFixed(3)} ms (SQLite's Node-RED: ${w.sqliteNodeCpuPerReadingMs.toFixed(3)} ms)`);
    for (const b of s.balanced) add(`readings/s through HAProxy, ${b.instances} instance(s)`, b.rps, `${fmt(b.rps)} readings/s; CPU s: PostgreSQL ${b.cpu.pgCpuS.toFixed(1)}, Node-RED ${b.cpu.nodeCpuS.toFixed(1)} in ${b.cpu.seconds} s`);
  }
  if (r.firmware) {
    add('firmware lib/ text (xtensa-lx106, -Os)', r.firmware.text, `${fmt(r.firmware.text)} bytes (code ${fmt(r.firmware.code)} + constants ${fmt(r.firmware.constants)}), data ${r.firmware.data}, bss ${r.firmware.bss}`, '<= 18 KiB', r.firmware.text <= 18432);
  }
  if (r.firmware && r.firmware.ramResident !== undefined) {
    add('firmware lib/ RAM-resident (.data, .bss, .rodata)', r.firmware.ramResident, `${r.firmware.ramResident} bytes (log texts in flash: ${fmt(r.firmware.flashTexts)})`, '<= 256 B', r.firmware.ramResident <= 256);
  }
  if (r.energy) {
    const e = r.energy;
    add('sleeper: exchanges per wake (HTTP, MQTT)', e.http.perWake.exchanges, `${e.http.perWake.exchanges.toFixed(2)}, ${e.mqtt.perWake.exchanges.toFixed(2)}`, '1', e.http.maxExchanges === 1 && e.mqtt.maxExchanges === 1);
    add('sleeper: awake per wake, fast path (model)', e.http.fast.awake, `${Math.round(e.http.fast.awake * 1000)} ms HTTP, ${Math.round(e.mqtt.fast.awake * 1000)} ms MQTT`, '<= 1 s', Math.max(e.http.fast.awake, e.mqtt.fast.awake) <= 1);
    add('sleeper: 2xAA life at one reading / 15 min, fast path (model)', e.http.fast.rows[2].days / 365, `${(e.http.fast.rows[2].days / 365).toFixed(1)} years HTTP, ${(e.mqtt.fast.rows[2].days / 365).toFixed(1)} MQTT`, '>= 1 year', Math.min(e.http.fast.rows[2].days, e.mqtt.fast.rows[2].days) >= 365);
  }
  return rows;
}

async function main() {
  const only = opt('only', Object.keys(BENCHES).join(',')).split(',');
  const results = {};
  for (const name of Object.keys(BENCHES)) {
    if (!only.includes(name)) continue;
    const started = Date.now();
    process.stderr.write(`bench ${name}${smoke ? ' (smoke)' : ''}...\n`);
    results[name] = await runBench(name);
    process.stderr.write(`bench ${name}: ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
  const cpus = os.cpus();
  const merge = opt('merge');
  const base = merge ? JSON.parse(fs.readFileSync(path.resolve(merge), 'utf8')) : undefined;
  const date = new Date().toISOString();
  // Which run each benchmark's results come from.
  const runs = { ...(base?.runs ?? Object.fromEntries(Object.keys(base?.results ?? {}).map((name) => [name, base.date]))), ...Object.fromEntries(Object.keys(results).map((name) => [name, date])) };
  Object.assign(results, { ...base?.results, ...results });
  const report = {
    date,
    ...(base ? { runs } : {}),
    smoke,
    machine: { cpus: cpus.length, model: cpus[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, nodeRed: results.nodes?.nodeRed ?? results.store?.nodeRed, platform: `${os.platform()} ${os.release()}` },
    figures: figures(results),
    results,
  };
  const out = path.resolve(opt('out', path.join(__dirname, 'results.json')));
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  if (results.http) writeChart(report, path.resolve(opt('svg', path.join(root, 'docs', 'benchmarks.svg'))));
  const width = Math.max(...report.figures.map((f) => f.figure.length));
  console.log(`${'figure'.padEnd(width)}  ${'value'.padEnd(58)}  goal`);
  for (const f of report.figures) {
    const mark = f.met === null ? '' : f.met ? '  met' : '  MISSED';
    console.log(`${f.figure.padEnd(width)}  ${f.text.padEnd(58)}  ${f.goal}${mark}`);
  }
  console.log(`\n${report.machine.cpus} x ${report.machine.model}, ${report.machine.memoryGiB} GiB, Node ${report.machine.node}, Node-RED ${report.machine.nodeRed}; written to ${path.relative(root, out)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
