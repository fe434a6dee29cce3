#!/usr/bin/env node
/**
 * `npm run cluster`: N stateless backend instances (`npm start` each, on its own port) sharing one PostgreSQL
 * database and one key, behind HAProxy (Debian's haproxy) that checks each instance's GET /healthz.
 *
 *   devices ──HTTP──▶ HAProxy :PORT ──▶ instance 1 :PORT+1 ─┐
 *                                   ──▶ instance 2 :PORT+2 ─┼──▶ PostgreSQL
 *                                   ──▶ instance N :PORT+N ─┘
 *
 * The database is E2EE_DATABASE_URL, or when that is unset a private PostgreSQL server that this script runs in
 * the data directory (loopback only). The master key, admin token and credential secret are made once in the data
 * directory and given to every instance. An instance that exits is started again (after a second), as a service
 * manager would; HAProxy takes it out of rotation while its health check fails and back in when it passes.
 *
 * Options: --instances N (3), --port P (1880: the load balancer; instances on P+1..P+N, editors on P+101..),
 * --data DIR (E2EE_DATA_DIR or ./data-cluster). Other E2EE_* variables reach every instance.
 * It writes DIR/cluster.json (ports, process ids, the HAProxy stats address) and prints "cluster ready".
 */
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { startPostgres } = require('./postgres');

const root = path.resolve(__dirname, '..');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

function fail(message) {
  console.error(message);
  process.exit(2);
}

/** A secret kept in the data directory (mode 0600), made on first use. */
function secret(dir, file, envName, generate) {
  if (process.env[envName]) return process.env[envName].trim();
  const p = path.join(dir, file);
  if (!fs.existsSync(p)) fs.writeFileSync(p, `${generate()}\n`, { mode: 0o600 });
  return fs.readFileSync(p, 'utf8').trim();
}

/** HAProxy's configuration: round robin over the instances, each checked with GET /healthz every second. */
function haproxyConfig({ host, port, statsPort, instances }) {
  return [
    'global',
    '  maxconn 4096',
    '',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout http-request 10s',
    // A request that could not reach an instance (connection refused) goes to another; one that reached it is
    // never sent twice (the instance may have acted on it).
    '  retries 2',
    '  option redispatch',
    '  option forwardfor',
    '',
    'frontend devices',
    `  bind ${host}:${port}`,
    '  default_backend nodered',
    '',
    'backend nodered',
    '  balance roundrobin',
    '  option httpchk GET /healthz',
    '  http-check expect status 200',
    '  default-server inter 1s fall 2 rise 2',
    ...instances.map((inst) => `  server n${inst.index} 127.0.0.1:${inst.port} check`),
    '',
    'frontend stats',
    `  bind 127.0.0.1:${statsPort}`,
    '  stats enable',
    '  stats uri /stats',
    '  stats refresh 5s',
    '',
  ].join('\n');
}

async function main() {
  const count = Number(option('instances', process.env.E2EE_INSTANCES || 3));
  const port = Number(option('port', process.env.PORT || 1880));
  const host = process.env.HOST || '127.0.0.1';
  const dataDir = path.resolve(option('data', process.env.E2EE_DATA_DIR || path.join(root, 'data-cluster')));
  if (!Number.isInteger(count) || count < 1 || count > 32) fail('--instances must be 1 to 32');
  let haproxyBin = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((p) => fs.existsSync(p));
  try {
    haproxyBin = haproxyBin || execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim();
  } catch {
    fail('HAProxy is not installed: apt-get install haproxy');
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  let pg;
  let databaseUrl = (process.env.E2EE_DATABASE_URL || '').trim();
  if (!databaseUrl) {
    // As root the server runs as the postgres user, who cannot enter a root-owned data directory: its files then
    // live in that user's home, under a name tied to this data directory.
    const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const tag = crypto.createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
    pg = await startPostgres({ dir: asRoot ? path.join('/var/lib/postgresql', `esp-e2ee-cluster-${tag}`) : path.join(dataDir, 'postgres') });
    const exists = await pg.query(pg.url(), "SELECT 1 FROM pg_database WHERE datname = 'esp_e2ee'");
    if (exists.length === 0) await pg.query(pg.url(), 'CREATE DATABASE esp_e2ee');
    databaseUrl = pg.url('esp_e2ee');
  }
  const shared = {
    E2EE_DATABASE_URL: databaseUrl,
    E2EE_KEY: secret(dataDir, 'aes-key.hex', 'E2EE_KEY', () => crypto.randomBytes(16).toString('hex')),
    E2EE_ADMIN_TOKEN: secret(dataDir, 'admin-token', 'E2EE_ADMIN_TOKEN', () => crypto.randomBytes(24).toString('base64url')),
    E2EE_CREDENTIAL_SECRET: secret(dataDir, 'credential-secret', 'E2EE_CREDENTIAL_SECRET', () => crypto.randomBytes(32).toString('hex')),
    // The instances see the devices' addresses (for the rate limits) from HAProxy's X-Forwarded-For.
    E2EE_TRUST_PROXY: 'loopback',
  };

  const instances = Array.from({ length: count }, (_, i) => ({ index: i + 1, port: port + i + 1, adminPort: port + 101 + i, child: undefined, restarts: 0 }));
  const statsPort = port + 100;
  let stopping = false;
  let haproxy;
  const state = () => ({
    loadBalancer: `http://${host}:${port}`,
    stats: `http://127.0.0.1:${statsPort}/stats`,
    instances: instances.map((inst) => ({ index: inst.index, port: inst.port, adminPort: inst.adminPort, pid: inst.child?.pid, restarts: inst.restarts })),
    haproxyPid: haproxy?.pid,
  });
  const writeState = () => fs.writeFileSync(path.join(dataDir, 'cluster.json'), `${JSON.stringify(state(), null, 2)}\n`);

  /** Starts (or restarts) one instance; resolves when it is ready. */
  const startInstance = (inst) => new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'start.js')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...shared, PORT: String(inst.port), HOST: '127.0.0.1', E2EE_ADMIN_PORT: String(inst.adminPort), E2EE_DATA_DIR: path.join(dataDir, `instance-${inst.index}`) },
    });
    inst.child = child;
    const prefix = `[n${inst.index}] `;
    let ready = false;
    const relay = (stream, out) => {
      let rest = '';
      stream.on('data', (chunk) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop();
        for (const line of lines) {
          out.write(`${prefix}${line}\n`);
          if (!ready && line.includes('esp-e2ee backend ready on')) {
            ready = true;
            resolve();
          }
        }
      });
    };
    relay(child.stdout, process.stdout);
    relay(child.stderr, process.stderr);
    child.on('exit', (code, signal) => {
      if (!ready) resolve();
      if (stopping) return;
      console.log(`${prefix}exited (${signal || code}); starting it again in 1 s`);
      inst.restarts++;
      setTimeout(() => { if (!stopping) startInstance(inst).then(writeState); }, 1000);
    });
    writeState();
  });

  // The first instance migrates the schema alone; the others follow together.
  await startInstance(instances[0]);
  await Promise.all(instances.slice(1).map(startInstance));

  const cfg = path.join(dataDir, 'haproxy.cfg');
  fs.writeFileSync(cfg, haproxyConfig({ host, port, statsPort, instances }));
  haproxy = spawn(haproxyBin, ['-f', cfg, '-db'], { stdio: ['ignore', 'inherit', 'inherit'] });
  haproxy.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`HAProxy exited (${signal || code}); stopping the cluster`);
      stop('haproxy');
    }
  });
  // Ready when HAProxy answers and sees every instance healthy.
  for (let i = 0; i < 100; i++) {
    const up = await fetch(`http://127.0.0.1:${statsPort}/stats;csv`).then((r) => r.text(), () => '');
    const healthy = up.split('\n').filter((l) => l.startsWith('nodered,n') && l.split(',')[17] === 'UP').length;
    if (healthy === count) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  writeState();
  console.log([
    '',
    `=== esp-e2ee cluster: ${count} instance(s) behind HAProxy ===`,
    `Devices and operators: http://${host}:${port}   (HAProxy; health checks on each instance's /healthz)`,
    ...instances.map((inst) => `Instance ${inst.index}:            http://127.0.0.1:${inst.port}   editor http://127.0.0.1:${inst.adminPort}/`),
    `HAProxy stats:         http://127.0.0.1:${statsPort}/stats`,
    `Database:              ${require(path.join(root, 'dist', 'nodes', 'lib')).describeConnection(databaseUrl)}${pg ? ` (private PostgreSQL in ${pg.dir})` : ''}`,
    `Keys and token:        ${dataDir} (aes-key.hex, admin-token), shared by every instance`,
    `State:                 ${path.join(dataDir, 'cluster.json')}`,
    `cluster ready on http://${host}:${port}`,
    '',
  ].join('\n'));

  async function stop(signal) {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping the cluster`);
    haproxy?.kill('SIGTERM');
    await Promise.all(instances.map((inst) => new Promise((resolve) => {
      const child = inst.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGTERM');
      setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 15000).unref();
    })));
    pg?.destroy();
    process.exit(0);
  }
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
