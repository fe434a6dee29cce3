/**
 * `npm run cluster`: N stateless backend instances (`npm start` each, on its own port) sharing one PostgreSQL
 * database and one key, behind HAProxy (Debian's haproxy) that checks each instance's GET /healthz.
 *
 *   devices ──HTTP──▶ HAProxy :PORT ──▶ instance 1 :PORT+1 ─┐
 *                                   ──▶ instance 2 :PORT+2 ─┼──▶ PostgreSQL
 *                                   ──▶ instance N :PORT+N ─┘
 *
 * The database is E2EE_DATABASE_URL, or when that is unset a private PostgreSQL server run in the data directory
 * (loopback only). The master key, admin token and credential secret are made once in the data directory and given
 * to every instance. HAProxy takes an instance out of rotation while its health check fails and back in when it
 * passes.
 *
 * Options: --instances N (3), --port P (1880: the load balancer; instances on P+1..P+N, editors on P+101..),
 * --data DIR (E2EE_DATA_DIR or ./data-cluster). Other E2EE_* variables reach every instance.
 * It writes DIR/cluster.json (ports, process ids, the HAProxy stats address) and prints "cluster ready".
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeConnection } from '../../nodes/lib';
import { PostgresServer, startPostgres } from '../postgres';
import { namedSecret } from '../secrets';
import { haproxyBinary, haproxyConfig, waitHealthy } from './haproxy';
import { Instance, InstanceOptions, startInstance, stopInstance } from './instances';

const ROOT = path.resolve(__dirname, '..', '..', '..');

interface ClusterOptions {
  count: number;
  port: number;
  host: string;
  dataDir: string;
}

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

function options(argv: string[], env: Record<string, string | undefined>): ClusterOptions {
  const option = (name: string, fallback: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
  };
  const count = Number(option('instances', env.E2EE_INSTANCES || '3'));
  if (!Number.isInteger(count) || count < 1 || count > 32) fail('--instances must be 1 to 32');
  return {
    count,
    port: Number(option('port', env.PORT || '1880')),
    host: env.HOST || '127.0.0.1',
    dataDir: path.resolve(option('data', env.E2EE_DATA_DIR || path.join(ROOT, 'data-cluster'))),
  };
}

/** E2EE_DATABASE_URL, or a private PostgreSQL server tied to the data directory (with its database). */
async function database(dataDir: string): Promise<{ url: string; pg?: PostgresServer }> {
  const given = (process.env.E2EE_DATABASE_URL || '').trim();
  if (given) return { url: given };
  // As root the server runs as the postgres user, who cannot enter a root-owned data directory: its files then
  // live in that user's home, under a name tied to this data directory.
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const tag = crypto.createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
  const pg = await startPostgres({ dir: asRoot ? path.join('/var/lib/postgresql', `esp-e2ee-cluster-${tag}`) : path.join(dataDir, 'postgres') });
  const exists = await pg.query(pg.url(), "SELECT 1 FROM pg_database WHERE datname = 'esp_e2ee'");
  if (exists.length === 0) await pg.query(pg.url(), 'CREATE DATABASE esp_e2ee');
  return { url: pg.url('esp_e2ee'), pg };
}

/** What every instance shares: the database, the secrets (made once in the data directory), the proxy trust. */
function sharedEnvironment(dataDir: string, databaseUrl: string): Record<string, string> {
  const env = process.env;
  const kept = (name: 'key' | 'token' | 'credentialSecret') => namedSecret(env, dataDir, name).value;
  return {
    E2EE_DATABASE_URL: databaseUrl,
    E2EE_KEY: kept('key'),
    E2EE_ADMIN_TOKEN: kept('token'),
    E2EE_CREDENTIAL_SECRET: kept('credentialSecret'),
    // The instances see the devices' addresses (for the rate limits) from HAProxy's X-Forwarded-For.
    E2EE_TRUST_PROXY: 'loopback',
  };
}

function readyBanner(opts: ClusterOptions, instances: Instance[], statsPort: number, databaseUrl: string, pg?: PostgresServer): string {
  const { count, host, port, dataDir } = opts;
  return [
    '',
    `=== esp-e2ee cluster: ${count} instance(s) behind HAProxy ===`,
    `Devices and operators: http://${host}:${port}   (HAProxy; health checks on each instance's /healthz)`,
    ...instances.map((inst) => `Instance ${inst.index}:            http://127.0.0.1:${inst.port}   editor http://127.0.0.1:${inst.adminPort}/`),
    `HAProxy stats:         http://127.0.0.1:${statsPort}/stats`,
    `Database:              ${describeConnection(databaseUrl)}${pg ? ` (private PostgreSQL in ${pg.dir})` : ''}`,
    `Keys and token:        ${dataDir} (aes-key.hex, admin-token), shared by every instance`,
    `State:                 ${path.join(dataDir, 'cluster.json')}`,
    `cluster ready on http://${host}:${port}`,
    '',
  ].join('\n');
}

export async function main(argv = process.argv): Promise<void> {
  const opts = options(argv, process.env);
  const haproxyBin = haproxyBinary() ?? fail('HAProxy is not installed: apt-get install haproxy');
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const { url: databaseUrl, pg } = await database(opts.dataDir);
  const instances: Instance[] = Array.from({ length: opts.count }, (_, i) => ({ index: i + 1, port: opts.port + i + 1, adminPort: opts.port + 101 + i, restarts: 0 }));
  const statsPort = opts.port + 100;
  let stopping = false;
  let haproxy: ChildProcess | undefined;
  const writeState = () => fs.writeFileSync(path.join(opts.dataDir, 'cluster.json'), `${JSON.stringify({
    loadBalancer: `http://${opts.host}:${opts.port}`,
    stats: `http://127.0.0.1:${statsPort}/stats`,
    instances: instances.map((inst) => ({ index: inst.index, port: inst.port, adminPort: inst.adminPort, pid: inst.child?.pid, restarts: inst.restarts })),
    haproxyPid: haproxy?.pid,
  }, null, 2)}\n`);
  const instanceOptions: InstanceOptions = { root: ROOT, dataDir: opts.dataDir, shared: sharedEnvironment(opts.dataDir, databaseUrl), isStopping: () => stopping, onChange: writeState };
  // The first instance migrates the schema alone; the others follow together.
  await startInstance(instances[0], instanceOptions);
  await Promise.all(instances.slice(1).map((inst) => startInstance(inst, instanceOptions)));

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping the cluster`);
    haproxy?.kill('SIGTERM');
    await Promise.all(instances.map(stopInstance));
    pg?.destroy();
    process.exit(0);
  };
  const cfg = path.join(opts.dataDir, 'haproxy.cfg');
  fs.writeFileSync(cfg, haproxyConfig({ host: opts.host, port: opts.port, statsPort, instances }));
  haproxy = spawn(haproxyBin, ['-f', cfg, '-db'], { stdio: ['ignore', 'inherit', 'inherit'] });
  haproxy.on('exit', (code, signal) => {
    if (stopping) return;
    console.error(`HAProxy exited (${signal || code}); stopping the cluster`);
    void stop('haproxy');
  });
  await waitHealthy(statsPort, opts.count);
  writeState();
  console.log(readyBanner(opts, instances, statsPort, databaseUrl, pg));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

export function run(): void {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
