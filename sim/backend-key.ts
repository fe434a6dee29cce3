import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The backend's AES key in hex, as the command-line tools take it: --key, else E2EE_KEY, else `aes-key.hex` in the
 * backend's data dir (where `npm start` keeps it). `what` names it in the error (the simulator's "key", the
 * provisioning tool's "master key"); the error never contains a key.
 */
export function backendKey(values: { key?: string; data?: string }, what: string, dataDir = values.data): string {
  if (values.key) return values.key;
  if (process.env.E2EE_KEY) return process.env.E2EE_KEY;
  const file = dataDir ? path.join(dataDir, 'aes-key.hex') : undefined;
  if (file && fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  throw new Error(`no ${what}: pass --key, set E2EE_KEY, or --data <the backend's data dir>${file ? ` (${file} does not exist)` : ''}`);
}
