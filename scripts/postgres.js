'use strict';
/**
 * A private PostgreSQL server (Debian's postgresql package) for `npm run cluster` and the tests: initdb in a
 * directory of its own, listening on 127.0.0.1 only on a free port (its socket in that directory too), started and
 * stopped with pg_ctl. PostgreSQL refuses to run as root, so as root every command runs as the `postgres` user the
 * package creates. When PostgreSQL is missing, the error says which package to install.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { freePort } = require('./ports');

function binDir() {
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb'))) : [];
  if (versions.length === 0) throw new Error('PostgreSQL is not installed: apt-get install postgresql (test/run-all.sh does)');
  versions.sort((a, b) => Number(b) - Number(a));
  return path.join(base, versions[0], 'bin');
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a PostgreSQL program as the user that owns the cluster. */
function pgRun(bin, args, options = {}) {
  const file = path.join(binDir(), bin);
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...options });
}

const running = new Set();
process.on('exit', () => {
  for (const cluster of [...running]) cluster.destroy();
});

/**
 * Starts a server and resolves with { port, url(db), createDatabase(), query(), stop(), start(), restart(), destroy() }.
 * @param {{dir?: string, port?: number, settings?: object}} options dir: where it lives (default: a new temporary
 *   directory, removed by destroy() and at exit); an existing one is started again with its data and port.
 *   settings: extra server settings.
 */
async function startPostgres({ dir, port, settings = {} } = {}) {
  const temporary = !dir;
  dir = dir ? path.resolve(dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'esp-e2ee-pg-'));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (asRoot) {
    const { uid, gid } = userIds('postgres');
    fs.chownSync(dir, uid, gid);
  }
  const data = path.join(dir, 'data');
  const portFile = path.join(dir, 'port');
  if (fs.existsSync(path.join(data, 'PG_VERSION'))) {
    port = port || Number(fs.readFileSync(portFile, 'utf8'));
    return launch({ dir, data, port, temporary });
  }
  port = port || (await freePort());
  fs.writeFileSync(portFile, `${port}\n`);
  // Trust on loopback only: the server listens on 127.0.0.1 and its own directory, nowhere else.
  pgRun('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', ...(temporary ? ['--no-sync'] : [])]);
  const conf = {
    listen_addresses: "'127.0.0.1'",
    port,
    unix_socket_directories: `'${dir}'`,
    max_connections: 200,
    shared_buffers: "'64MB'",
    ...settings,
  };
  fs.appendFileSync(path.join(data, 'postgresql.conf'), Object.entries(conf).map(([k, v]) => `${k} = ${v}\n`).join(''));
  return launch({ dir, data, port, temporary });
}

function launch({ dir, data, port, temporary }) {
  const cluster = { dir, data, port };
  const log = path.join(dir, 'server.log');
  cluster.start = () => pgRun('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', 'start']);
  cluster.stop = (mode = 'fast') => pgRun('pg_ctl', ['-D', data, '-w', '-t', '60', 'stop', '-m', mode]);
  cluster.restart = () => { cluster.stop(); cluster.start(); };
  cluster.url = (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`;
  cluster.log = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '');
  let n = 0;
  /** A new empty database; resolves with its connection string. */
  cluster.createDatabase = async (prefix = 'e2ee') => {
    const name = `${prefix}_${process.pid}_${++n}`;
    const { Client } = require('pg');
    const client = new Client({ connectionString: cluster.url() });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return cluster.url(name);
  };
  /** Runs SQL with a connection of its own (an outside observer). */
  cluster.query = async (url, sql, params = []) => {
    const { Client } = require('pg');
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows;
    } finally {
      await client.end();
    }
  };
  cluster.destroy = () => {
    running.delete(cluster);
    try {
      cluster.stop(temporary ? 'immediate' : 'fast');
    } catch {
      // not running
    }
    if (temporary) fs.rmSync(dir, { recursive: true, force: true });
  };
  running.add(cluster);
  cluster.start();
  return cluster;
}

function userIds(name) {
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no ${name} user: apt-get install postgresql creates it`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

module.exports = { startPostgres, freePort };
