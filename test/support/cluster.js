'use strict';
/**
 * Starts `npm run cluster` (scripts/cluster.js) in its own process group on free loopback ports and waits for
 * "cluster ready"; its state (instance ports and process ids, the HAProxy stats address) comes from cluster.json.
 */
const fs = require('node:fs');
const path = require('node:path');
const { freePort, portFree } = require('../../dist/app/ports');
const { spawnUntilReady } = require('./spawn');

const root = path.resolve(__dirname, '..', '..');

/** A base port P with P .. P+100+n free (the load balancer, the instances, the stats page, the editors). */
async function freeBase(instances) {
  for (;;) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const wanted = [base, ...Array.from({ length: instances }, (_, i) => base + 1 + i), base + 100, ...Array.from({ length: instances }, (_, i) => base + 101 + i)];
    const ok = await Promise.all(wanted.map((p) => portFree(p)));
    if (ok.every(Boolean)) return base;
  }
}

async function startCluster({ dataDir, instances = 3, env = {} }) {
  const port = await freeBase(instances);
  const proc = await spawnUntilReady({
    command: process.execPath,
    args: [path.join(root, 'scripts', 'cluster.js'), '--instances', String(instances), '--port', String(port), '--data', dataDir],
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', ...env },
    ready: 'cluster ready on',
    timeoutMs: 120000,
    what: 'cluster',
  });
  const { child, exited } = proc;
  const state = () => JSON.parse(fs.readFileSync(path.join(dataDir, 'cluster.json'), 'utf8'));
  return {
    url: `http://127.0.0.1:${port}`,
    instanceUrl: (i) => `http://127.0.0.1:${port + i}`,
    state,
    output: () => proc.output,
    /** HAProxy's view of each instance: {n1: 'UP', n2: 'DOWN', ...}. */
    async servers() {
      const csv = await fetch(`${state().stats};csv`).then((r) => r.text());
      const out = {};
      for (const line of csv.split('\n')) {
        const f = line.split(',');
        if (f[0] === 'nodered' && /^n\d+$/.test(f[1])) out[f[1]] = f[17];
      }
      return out;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 30000);
      await exited;
      clearTimeout(timer);
    },
  };
}

module.exports = { startCluster, freePort };
