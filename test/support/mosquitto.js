'use strict';
/**
 * Debian's Mosquitto for the tests: started on a free loopback port, with the password and ACL files that
 * `esp-e2ee-keys --mosquitto` writes for the given master key and device ids (or open, without them). Never assumed
 * running; stop() ends it.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const mqtt = require('mqtt');
const { freePort } = require('./backend');
const { until } = require('./wait');
const lib = require('../../dist/nodes/lib');

const root = path.resolve(__dirname, '..', '..');

/**
 * @param {string} dir an empty private directory for its files
 * @param {{keyHex: string, ids: string[], open?: boolean}} options
 */
async function startMosquitto(dir, { keyHex, ids, open = false }) {
  const port = await freePort();
  // (As root, Mosquitto drops to its own user, which cannot read a private temp dir: it stays this user.)
  const conf = [`listener ${port} 127.0.0.1`, 'persistence false', `user ${os.userInfo().username}`];
  if (open) conf.push('allow_anonymous true');
  else {
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'sim', 'keys.js'), '--mosquitto', dir, '--key', keyHex, ...ids], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    conf.push('allow_anonymous false', `password_file ${path.join(dir, 'passwd')}`, `acl_file ${path.join(dir, 'acl')}`);
  }
  fs.writeFileSync(path.join(dir, 'mosquitto.conf'), `${conf.join('\n')}\n`);
  const proc = spawn('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c) => { out += c; });
  proc.stderr.on('data', (c) => { out += c; });
  const master = Buffer.from(keyHex, 'hex');
  await until('mosquitto listening', async () => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { username: lib.BACKEND_BROKER_USER, password: lib.backendBrokerPassword(master), reconnectPeriod: 0, connectTimeout: 1000 });
    const ok = await new Promise((resolve) => { c.once('connect', () => resolve(true)); c.once('error', () => resolve(false)); c.once('close', () => resolve(false)); });
    c.end(true);
    return ok;
  }, 10000);
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    get output() { return out; },
    stop: () => new Promise((r) => { if (proc.exitCode !== null) r(); else { proc.once('exit', r); proc.kill('SIGTERM'); } }),
  };
}

module.exports = { startMosquitto };
