#!/usr/bin/env node
/**
 * Does anything grow under sustained load and cost every request afterwards? One backend (`npm start`'s,
 * scripts/start.js): the bare route, then sustained readings from 1,000 devices, then the bare route again.
 * Reports both bare figures (their ratio should stay near 1), the readings throughput of the first and the
 * last tenth of the sustained phase, and the RSS of the process before and after.
 *
 * Usage: node bench/drift.js [--seconds 60] [--bare 5] [--connections 20] [--json]
 */
'use strict';
const path = require('node:path');
const crypto = require('node:crypto');
const lib = require('../dist/nodes/lib');
const { startBackend } = require('../test/support/backend');
const { tempDir } = require('../test/support/tmp');
const { fmt, arg, benchMain } = require('./lib/runtime');
const { readingsLoad, cannon, rssMb, BARE_FLOW, addFlow } = require('./lib/load');

const START = path.join(__dirname, '..', 'scripts', 'start.js');

async function run({ seconds = arg('seconds', 60), bare = arg('bare', 5), connections = arg('connections', 20) } = {}) {
  const tmp = tempDir('esp-e2ee-bench-drift-');
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(16).toString('hex');
  const backend = await startBackend({ script: START, dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn', E2EE_RATE_LIMIT: 'off' } });
  try {
    await addFlow(backend.adminUrl, TOKEN, 'bare', BARE_FLOW);
    const bareOpts = { url: `${backend.url}/bench/bare`, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"iv":"x","data":"y"}', connections };
    const load = await readingsLoad({ url: backend.url, key: new lib.DeviceKeyring(Buffer.from(KEY, 'hex'), 'hmac-sha256'), devices: 1000, prefix: 'DR' });
    await cannon({ ...bareOpts, duration: 2 });
    const rssBefore = rssMb(backend.pid);
    const bareBefore = (await cannon({ ...bareOpts, duration: bare }))['2xx'] / bare;
    // The sustained phase in tenths, to see a trend within it.
    const tenths = [];
    for (let i = 0; i < 10; i++) {
      const r = await cannon({ url: backend.url, requests: [load.request], connections, duration: seconds / 10 });
      if (r.non2xx + r.errors > 0) throw new Error(`readings: ${r.non2xx} non-2xx, ${r.errors} errors`);
      tenths.push(r['2xx'] / (seconds / 10));
    }
    const bareAfter = (await cannon({ ...bareOpts, duration: bare }))['2xx'] / bare;
    return { seconds, readings: load.sent, bareBefore, bareAfter, bareRatio: bareAfter / bareBefore, readingsFirst: tenths[0], readingsLast: tenths[9], readingsRatio: tenths[9] / tenths[0], rssBeforeMb: rssBefore, rssAfterMb: rssMb(backend.pid) };
  } finally {
    await backend.stop();
    tmp.cleanup();
  }
}

if (require.main === module) {
  benchMain(run, (r) => {
    console.log(`drift: ${fmt(r.readings)} readings in ${r.seconds} s of sustained load`);
    console.log(`  bare route before ${fmt(r.bareBefore)} req/s, after ${fmt(r.bareAfter)} req/s: ratio ${r.bareRatio.toFixed(2)}`);
    console.log(`  readings first tenth ${fmt(r.readingsFirst)}/s, last tenth ${fmt(r.readingsLast)}/s: ratio ${r.readingsRatio.toFixed(2)}`);
    console.log(`  RSS ${r.rssBeforeMb.toFixed(0)} MB before, ${r.rssAfterMb.toFixed(0)} MB after`);
  });
}

module.exports = { run };
