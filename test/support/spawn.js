'use strict';
/** Spawns a server in its own process group and waits until its output says it is ready. */
const { spawn } = require('node:child_process');

/**
 * @param {{command: string, args: string[], cwd: string, env: object, ready: string, timeoutMs: number, what: string}} o
 * @returns {Promise<{child: import('node:child_process').ChildProcess, exited: Promise<string|number>, readonly output: string}>}
 *   output grows as the process writes (stdout and stderr together).
 */
async function spawnUntilReady({ command, args, cwd, env, ready, timeoutMs, what }) {
  const child = spawn(command, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  child.stdout.on('data', (c) => { output += c; });
  child.stderr.on('data', (c) => { output += c; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal || code)));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready in ${timeoutMs / 1000} s:\n${output}`)), timeoutMs);
    const check = () => {
      if (output.includes(ready)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', check);
    exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${how}) before it was ready:\n${output}`));
    });
  });
  return { child, exited, get output() { return output; } };
}

module.exports = { spawnUntilReady };
