/** The backend's secrets: from the environment, else from their file in the data directory, else generated there. */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Secret {
  value: string;
  /** Where it came from, for the banner: a variable's name or a file. */
  source: string;
  /** Made just now (the banner says so, and shows it once on a terminal). */
  generated: boolean;
}

/** A secret from the environment, else from its file in the data dir, else generated into that file (0600). */
export function secret(env: Record<string, string | undefined>, envName: string, file: string, generate: () => string): Secret {
  const fromEnv = env[envName];
  if (fromEnv) return { value: fromEnv.trim(), source: `the ${envName} environment variable`, generated: false };
  if (fs.existsSync(file)) return { value: fs.readFileSync(file, 'utf8').trim(), source: file, generated: false };
  const value = generate();
  fs.writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return { value, source: file, generated: true };
}

export interface Secrets {
  key: Secret;
  token: Secret;
  credentialSecret: Secret;
}

const HEX_KEY = /^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/;

/** Each secret: its environment variable, its file in the data directory, and how a new one is made. */
export const SECRETS: Record<keyof Secrets, { env: string; file: string; generate: () => string }> = {
  key: { env: 'E2EE_KEY', file: 'aes-key.hex', generate: () => crypto.randomBytes(16).toString('hex') },
  token: { env: 'E2EE_ADMIN_TOKEN', file: 'admin-token', generate: () => crypto.randomBytes(24).toString('base64url') },
  credentialSecret: { env: 'E2EE_CREDENTIAL_SECRET', file: 'credential-secret', generate: () => crypto.randomBytes(32).toString('hex') },
};

/** One of the secrets, from the environment, its file, or made into its file. */
export function namedSecret(env: Record<string, string | undefined>, dataDir: string, name: keyof Secrets): Secret {
  const { env: variable, file, generate } = SECRETS[name];
  return secret(env, variable, path.join(dataDir, file), generate);
}

/** The AES key (master key in per-device scope), the admin token and Node-RED's credential secret. */
export function loadSecrets(env: Record<string, string | undefined>, dataDir: string): Secrets {
  const key = namedSecret(env, dataDir, 'key');
  if (!HEX_KEY.test(key.value)) throw new Error(`The AES key from ${key.source} must be 32, 48 or 64 hex digits.`);
  return { key, token: namedSecret(env, dataDir, 'token'), credentialSecret: namedSecret(env, dataDir, 'credentialSecret') };
}

/** Node-RED's encrypted credentials format: {"$": hex(iv) + base64(AES-256-CTR(sha256(secret), iv, json))}. */
export function encryptCredentials(credentials: unknown, credentialSecret: string): { $: string } {
  const key = crypto.createHash('sha256').update(credentialSecret).digest();
  const iv = crypto.randomBytes(16);
  const cipher = crypto.createCipheriv('aes-256-ctr', key, iv);
  return { $: iv.toString('hex') + cipher.update(JSON.stringify(credentials), 'utf8', 'base64') + cipher.final('base64') };
}
