#!/usr/bin/env node
// `npm start` (until the backend flow lands): builds the package, loads it into
// a real Node-RED runtime and prints the node types it registered.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

execFileSync(process.execPath, [path.join(__dirname, 'build.js')], { stdio: 'inherit' });
const { startRuntime } = require('../bench/lib/runtime');

(async () => {
  const runtime = await startRuntime({ flow: [] });
  const types = runtime.RED.nodes.getNodeList()
    .filter((set) => set.module === 'node-red-contrib-esp-e2ee')
    .flatMap((set) => set.types.map((type) => `${type} (${set.enabled ? 'loaded' : 'disabled'}${set.err ? `: ${set.err}` : ''})`));
  console.log(`node-red-contrib-esp-e2ee on Node-RED ${runtime.RED.version()}:`);
  for (const t of types) console.log(`  ${t}`);
  await runtime.stop();
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
