'use strict';
/**
 * Starts the backend exactly as the README says, `npm start`, in its own
 * process group on free loopback ports (devices, editor), and waits until it is ready.
 */
const path = require('node:path');
const { freePort } = require('../../dist/app/ports');
const { spawnUntilReady } = require('./spawn');

const root = path.resolve(__dirname, '..', '..');

/**
 * E2EE_BACKEND_NODE_RED=<dir of a node-red package> runs the backend on that Node-RED instead, with the
 * `node` next to it first on PATH (test/nr5 holds Node-RED 5 and the Node 22 it needs).
 */
function otherNodeRed() {
  const dir = process.env.E2EE_BACKEND_NODE_RED;
  if (!dir) return {};
  const bin = path.join(path.resolve(dir), '..', '.bin');
  return { E2EE_NODE_RED: path.resolve(dir), PATH: `${bin}${path.delimiter}${process.env.PATH}` };
}

/**
 * @param {{dataDir: string, env?: object, port?: number, mqttPort?: number, script?: string, nodeArgs?: string[]}} options
 *   script: run `node [nodeArgs] <script>` instead of `npm start`; mqttPort: the embedded broker's (default a free one)
 */
async function startBackend({ dataDir, env = {}, port, mqttPort, script, nodeArgs = [] }) {
  port = port || (await freePort());
  mqttPort = mqttPort || (await freePort());
  const adminPort = await freePort();
  const proc = await spawnUntilReady({
    command: script ? process.execPath : 'npm',
    args: script ? [...nodeArgs, script] : ['start'],
    cwd: root,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', E2EE_ADMIN_PORT: String(adminPort), E2EE_MQTT_PORT: String(mqttPort), E2EE_DATA_DIR: dataDir, ...otherNodeRed(), ...env },
    ready: 'esp-e2ee backend ready on',
    timeoutMs: 60000,
    what: 'backend',
  });
  const { child, exited } = proc;
  /** Resolves when no process of the group is left (npm exits before the Node-RED process it started). */
  const groupGone = async (timeoutMs) => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        process.kill(-child.pid, 0);
      } catch {
        return true;
      }
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return {
    port,
    /** The spawned process (with `script`, the Node-RED process itself). */
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    /** The embedded MQTT broker (unless E2EE_MQTT says otherwise). */
    mqttPort,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    /** The editor and its admin API (their own listener). */
    adminUrl: `http://127.0.0.1:${adminPort}`,
    get output() { return proc.output; },
    exited,
    /** SIGKILL to the whole process group: npm, the shell and Node-RED die at once. */
    async kill() {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      await exited;
      await groupGone(10000);
    },
    /** A graceful stop: SIGTERM to the group, then wait until every process of it has exited. */
    async stop() {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      await exited;
      if (!(await groupGone(15000))) {
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
        await groupGone(5000);
      }
    },
  };
}

module.exports = { startBackend, freePort };
