/**
 * One backend per data directory. The lock is a listening Unix socket named after the directory: in Linux's
 * abstract namespace, which the kernel removes when the process ends however it ends, so a kill -9 cannot leave a
 * stale lock; elsewhere a socket file in the directory, taken over when nothing listens on it any more.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export class DataDirInUse extends Error {
  constructor(readonly dataDir: string) {
    super(`The data directory ${dataDir} is in use by another backend (npm start): stop that one, or set E2EE_DATA_DIR to another directory.`);
  }
}

/** The lock's socket address for a data directory. */
export function lockAddress(dataDir: string): string {
  const real = fs.realpathSync(dataDir);
  if (process.platform === 'linux') return `\0esp-e2ee-${crypto.createHash('sha256').update(real).digest('hex').slice(0, 32)}`;
  return path.join(real, '.esp-e2ee.lock');
}

function listen(server: net.Server, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
}

/** Whether something listens on a socket file (a live backend), or it is left over from one that died. */
function alive(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(address, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Takes the data directory's lock for this process's life; rejects with DataDirInUse when another holds it. */
export async function lockDataDir(dataDir: string): Promise<net.Server> {
  const address = lockAddress(dataDir);
  const server = net.createServer((socket) => socket.destroy());
  server.unref();
  try {
    await listen(server, address);
    return server;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (address.startsWith('\0') || (await alive(address))) throw new DataDirInUse(dataDir);
    fs.rmSync(address, { force: true });
    await listen(server, address);
    return server;
  }
}
