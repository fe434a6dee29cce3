/**
 * A private PostgreSQL server (Debian's postgresql package) for `npm run cluster` and the tests: initdb in a
 * directory of its own, listening on 127.0.0.1 only on a free port (its socket in that directory too), started and
 * stopped with pg_ctl. PostgreSQL refuses to run as root, so as root every command runs as the `postgres` user the
 * package creates. When PostgreSQL is missing, the error says which package to install.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as PgTypes from 'pg';
import { freePort } from './ports';

function binDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb'))) : [];
  if (versions.length === 0) throw new Error('PostgreSQL is not installed: apt-get install postgresql (test/run-all.sh does)');
  versions.sort((a, b) => Number(b) - Number(a));
  return path.join(base, versions[0], 'bin');
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a PostgreSQL program as the user that owns the cluster. */
function pgRun(bin: string, args: string[]): string {
  const file = path.join(binDir(), bin);
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

function userIds(name: string): { uid: number; gid: number } {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${name} user: apt-get install postgresql creates it`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

export interface PostgresServer {
  dir: string;
  data: string;
  port: number;
  start(): void;
  stop(mode?: 'fast' | 'immediate' | 'smart'): void;
  restart(): void;
  /** The connection string of a database on it. */
  url(db?: string): string;
  /** The server's log so far. */
  log(): string;
  /** A new empty database; resolves with its connection string. */
  createDatabase(prefix?: string): Promise<string>;
  /** Runs SQL with a connection of its own (an outside observer). */
  query<T = Record<string, unknown>>(url: string, sql: string, params?: unknown[]): Promise<T[]>;
  /** Stops it; a temporary one's directory is removed. */
  destroy(): void;
}

const running = new Set<PostgresServer>();
process.on('exit', () => {
  for (const server of [...running]) server.destroy();
});

async function withClient<T>(url: string, fn: (client: PgTypes.Client) => Promise<T>): Promise<T> {
  const { Client } = require('pg') as typeof PgTypes;
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function launch(dir: string, data: string, port: number, temporary: boolean): PostgresServer {
  const log = path.join(dir, 'server.log');
  let n = 0;
  const server: PostgresServer = {
    dir,
    data,
    port,
    start: () => void pgRun('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', 'start']),
    stop: (mode = 'fast') => void pgRun('pg_ctl', ['-D', data, '-w', '-t', '60', 'stop', '-m', mode]),
    restart: () => {
      server.stop();
      server.start();
    },
    url: (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`,
    log: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''),
    createDatabase: async (prefix = 'e2ee') => {
      const name = `${prefix}_${process.pid}_${++n}`;
      await withClient(server.url(), (client) => client.query(`CREATE DATABASE ${name}`));
      return server.url(name);
    },
    query: (url, sql, params = []) => withClient(url, async (client) => (await client.query(sql, params)).rows),
    destroy: () => {
      running.delete(server);
      try {
        server.stop(temporary ? 'immediate' : 'fast');
      } catch {
        // not running
      }
      if (temporary) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(server);
  server.start();
  return server;
}

/**
 * Starts a server. dir: where it lives (default: a new temporary directory, removed by destroy() and at exit); an
 * existing one is started again with its data and port. settings: extra server settings.
 */
export async function startPostgres({ dir, port, settings = {} }: { dir?: string; port?: number; settings?: Record<string, string | number> } = {}): Promise<PostgresServer> {
  const temporary = !dir;
  const home = dir ? path.resolve(dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'esp-e2ee-pg-'));
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  if (asRoot) {
    const { uid, gid } = userIds('postgres');
    fs.chownSync(home, uid, gid);
  }
  const data = path.join(home, 'data');
  const portFile = path.join(home, 'port');
  if (fs.existsSync(path.join(data, 'PG_VERSION'))) return launch(home, data, port || Number(fs.readFileSync(portFile, 'utf8')), temporary);
  const chosen = port || (await freePort());
  fs.writeFileSync(portFile, `${chosen}\n`);
  // Trust on loopback only: the server listens on 127.0.0.1 and its own directory, nowhere else.
  pgRun('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', ...(temporary ? ['--no-sync'] : [])]);
  const conf: Record<string, string | number> = {
    listen_addresses: "'127.0.0.1'",
    port: chosen,
    unix_socket_directories: `'${home}'`,
    max_connections: 200,
    shared_buffers: "'64MB'",
    ...settings,
  };
  fs.appendFileSync(path.join(data, 'postgresql.conf'), Object.entries(conf).map(([k, v]) => `${k} = ${v}\n`).join(''));
  return launch(home, data, chosen, temporary);
}

export { freePort };
