/**
 * The backend instances of the cluster: each `npm start`'s launcher in a process of its own, its output prefixed,
 * started again a second after it exits (as a service manager would) until the cluster stops.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';

export interface Instance {
  index: number;
  port: number;
  adminPort: number;
  child?: ChildProcess;
  restarts: number;
}

export interface InstanceOptions {
  root: string;
  dataDir: string;
  /** Variables every instance gets (database, secrets). */
  shared: Record<string, string>;
  isStopping(): boolean;
  /** After a restart is ready (the cluster's state file). */
  onChange(): void;
}

/** Copies a stream's lines to out with a prefix; calls onReady at the backend's ready line. */
function relay(stream: Readable, out: Writable, prefix: string, onReady: () => void): void {
  let rest = '';
  stream.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      out.write(`${prefix}${line}\n`);
      if (line.includes('esp-e2ee backend ready on')) onReady();
    }
  });
}

/** Starts (or restarts) one instance; resolves when it is ready (or has exited). */
export function startInstance(inst: Instance, options: InstanceOptions): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(options.root, 'scripts', 'start.js')], {
      cwd: options.root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ...options.shared,
        PORT: String(inst.port),
        HOST: '127.0.0.1',
        E2EE_ADMIN_PORT: String(inst.adminPort),
        E2EE_DATA_DIR: path.join(options.dataDir, `instance-${inst.index}`),
        // One embedded broker per instance would split the devices: the cluster's MQTT is a broker of its own
        // (E2EE_MQTT=mqtt://...), with a shared subscription; without one, MQTT is off.
        E2EE_MQTT: process.env.E2EE_MQTT?.startsWith('mqtt://') ? process.env.E2EE_MQTT : 'off',
      },
    });
    inst.child = child;
    const prefix = `[n${inst.index}] `;
    relay(child.stdout as Readable, process.stdout, prefix, resolve);
    relay(child.stderr as Readable, process.stderr, prefix, resolve);
    child.on('exit', (code, signal) => {
      resolve();
      if (options.isStopping()) return;
      console.log(`${prefix}exited (${signal || code}); starting it again in 1 s`);
      inst.restarts++;
      setTimeout(() => {
        if (!options.isStopping()) void startInstance(inst, options).then(options.onChange);
      }, 1000);
    });
    options.onChange();
  });
}

/** SIGTERM to an instance (pending writes commit), SIGKILL after 15 s. */
export function stopInstance(inst: Instance): Promise<void> {
  return new Promise((resolve) => {
    const child = inst.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, 15000).unref();
  });
}
