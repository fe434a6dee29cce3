#!/usr/bin/env node
/**
 * Where the readings route spends its time: runs the backend (scripts/start.js, the shipped flow) under
 * `node --cpu-prof`, drives POST /api/devices/:id/readings with autocannon (fresh SEQN per request), and
 * attributes the profile's samples to the stages of the route: HTTP and body, Node-RED's message routing,
 * the change node, decrypt, replay guard, log (registry and store), sqlite3's callbacks, the response,
 * garbage collection. A frame without a file of its own (JSON.parse, a native) counts for its caller.
 *
 * Usage: node bench/profile.js [--duration 10] [--connections 20] [--auth hmac-sha256|none] [--out DIR]
 * With E2EE_DATABASE_URL set, the backend stores in that PostgreSQL database instead of SQLite.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const lib = require('../dist/nodes/lib');
const { startBackend } = require('../test/support/backend');
const { tempDir } = require('../test/support/tmp');
const { arg } = require('./lib/runtime');
const { readingsLoad, cannon } = require('./lib/load');

const root = path.resolve(__dirname, '..');

/** Stage of a call frame, from its script; undefined: count it for the caller. */
const STAGES = [
  ['decrypt', /dist\/nodes\/(aes-decrypt|lib\/(crypto|wire|plaintext|key|base64))/],
  ['replay guard', /dist\/nodes\/(replay-guard|lib\/replay-window)/],
  ['log (registry + store)', /dist\/nodes\/(device-registry|device-store|lib\/(registry|store))/],
  ['sqlite3 callbacks', /node_modules\/sqlite3\//],
  ['postgresql client (pg)', /node_modules\/(pg|pg-pool|pg-protocol|pg-types|postgres-[a-z]+)\//],
  ['change node', /core\/function\/15-change\.js/],
  ['http in / response nodes', /core\/network\/21-httpin\.js/],
  ['Node-RED message routing', /@node-red\/(runtime|util)\//],
  ['HTTP and body (express, node:http)', /node_modules\/(express|body-parser|raw-body|on-finished|finalhandler|router|send|serve-static|type-is|content-type|qs|iconv-lite|depd|debug|cookie|cors|statuses|http-errors|mime|accepts|negotiator|bytes|media-typer|vary|etag|fresh|range-parser|parseurl|encodeurl|escape-html|merge-descriptors|methods|path-to-regexp|proxy-addr|utils-merge|ipaddr\.js|forwarded|setprototypeof|unpipe|destroy|ee-first|safe-buffer|content-disposition)\/|^node:(_http|http|net|stream|internal\/(streams|http|stream_base))|scripts\/start\.js/],
];
/** Node's own internals outside HTTP (crypto, buffers, timers) count for whoever called them. */
const INHERIT = /^node:/;
const SPECIAL = new Map([['(garbage collector)', 'garbage collection'], ['(idle)', 'idle'], ['(program)', 'program (V8, native)']]);

function attribute(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stageOf = new Map();
  const others = new Map();
  const resolve = (id) => {
    if (stageOf.has(id)) return stageOf.get(id);
    const n = byId.get(id);
    let stage = SPECIAL.get(n.callFrame.functionName);
    if (!stage) {
      const url = n.callFrame.url || '';
      const hit = url ? STAGES.find(([, re]) => re.test(url)) : undefined;
      if (hit) stage = hit[0];
      else if (url && !INHERIT.test(url)) {
        stage = 'other';
        others.set(url, (others.get(url) ?? 0) + n.hitCount);
      }
      else stage = parent.has(id) ? resolve(parent.get(id)) : 'program (V8, native)';
    }
    stageOf.set(id, stage);
    return stage;
  };
  const time = new Map();
  const deltas = profile.timeDeltas;
  profile.samples.forEach((id, i) => {
    const stage = resolve(id);
    time.set(stage, (time.get(stage) ?? 0) + (deltas[i + 1] ?? deltas[i] ?? 0));
  });
  if (process.env.PROFILE_OTHERS) console.log([...others].sort((a, b) => b[1] - a[1]).slice(0, 15));
  return time;
}

async function main() {
  const duration = arg('duration', 10);
  const connections = arg('connections', 20);
  const auth = process.argv.includes('--auth') ? process.argv[process.argv.indexOf('--auth') + 1] : 'hmac-sha256';
  const tmp = tempDir('esp-e2ee-profile-');
  const profDir = path.resolve(process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1] : path.join(tmp.dir, 'prof'));
  const KEY = crypto.randomBytes(16).toString('hex');
  const backend = await startBackend({
    script: path.join(root, 'scripts', 'start.js'),
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
    dataDir: tmp.dir,
    env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: 'profile', E2EE_AUTH: auth, E2EE_LOG_LEVEL: 'warn', E2EE_RATE_LIMIT: 'off' },
  });
  try {
    const load = await readingsLoad({ url: backend.url, key: auth === 'none' ? lib.parseKey('hex', KEY, auth) : new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), auth), devices: 100 });
    const result = await cannon({ url: backend.url, connections, duration, requests: [load.request] });
    console.log(`${auth}: ${Math.round(result.requests.average)} readings/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, non-2xx ${result.non2xx}`);
  } finally {
    // A graceful stop: the profile is written when the process exits.
    await backend.stop();
  }
  const file = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profDir, f))[0];
  const time = attribute(JSON.parse(fs.readFileSync(file, 'utf8')));
  const busy = [...time].filter(([s]) => s !== 'idle').reduce((a, [, t]) => a + t, 0);
  console.log(`Node-RED process, ${(busy / 1e6).toFixed(1)} s on the CPU (idle excluded); profile: ${file}`);
  for (const [stage, t] of [...time].sort((a, b) => b[1] - a[1])) {
    if (stage === 'idle') continue;
    console.log(`  ${stage.padEnd(38)} ${(t / 1e6).toFixed(2).padStart(7)} s  ${((100 * t) / busy).toFixed(1).padStart(5)} %`);
  }
  console.log(`  ${'idle'.padEnd(38)} ${((time.get('idle') ?? 0) / 1e6).toFixed(2).padStart(7)} s`);
  if (!process.argv.includes('--out')) tmp.cleanup();
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

module.exports = { attribute };
