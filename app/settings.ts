/**
 * Every environment variable of `npm start`, in one typed table: its default, what it means (docs/operations.md's variable
 * table is checked against this one, test/lib/app-settings.test.js) and how it is read. readSettings parses them all
 * at once and names every bad one; nothing else in app/ reads process.env for these.
 */
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { BACKEND_BROKER_USER, backendBrokerPassword, backendSubscriptions, checkPrefix } from '../nodes/lib';
import type { MqttSettings } from './mqtt';

export interface Variable {
  name: string;
  /** The default as docs/operations.md shows it. */
  shown: string;
  meaning: string;
}

/** The variables, in docs/operations.md's order. */
export const VARIABLES: Variable[] = [
  { name: 'PORT', shown: '1880', meaning: 'HTTP port of the device and operator endpoints' },
  { name: 'HOST', shown: '127.0.0.1', meaning: 'their listen address; `0.0.0.0` lets devices on your network in' },
  { name: 'E2EE_ADMIN_PORT', shown: '1881', meaning: 'HTTP port of the editor and its admin API' },
  { name: 'E2EE_ADMIN_HOST', shown: '127.0.0.1', meaning: 'their listen address' },
  { name: 'E2EE_DATA_DIR', shown: '`./data`', meaning: 'database, Node-RED user dir, generated secrets' },
  { name: 'E2EE_KEY', shown: 'generated', meaning: 'hex AES key' },
  { name: 'E2EE_ADMIN_TOKEN', shown: 'generated', meaning: 'operator bearer token and editor password' },
  { name: 'E2EE_AUTH', shown: 'hmac-sha256', meaning: 'auth mode of the flow\'s key, for a new data dir' },
  { name: 'E2EE_EDITOR', shown: 'on', meaning: '`off` disables the editor (and its listener)' },
  { name: 'E2EE_RATE_LIMIT', shown: '`device=5/s burst 20, source=200/s burst 400`', meaning: 'rate limits per source address and per authenticated device' },
  { name: 'E2EE_RETENTION', shown: '`90d`', meaning: 'readings kept' },
  { name: 'E2EE_DURABILITY', shown: 'power', meaning: 'what an acknowledged write survives: `power` or `process`' },
  { name: 'E2EE_PUSH_ALLOW', shown: 'private ranges', meaning: 'CIDRs commands may be pushed to' },
  { name: 'E2EE_MAX_DEVICES', shown: '10000', meaning: 'the most devices registration may create' },
  { name: 'E2EE_COMMAND_TTL', shown: '`7d`', meaning: 'how long a command waits for the device\'s acknowledgement' },
  { name: 'E2EE_REJECTION_LOG_INTERVAL', shown: '60', meaning: 'seconds between the per-source summaries of rejected requests' },
  { name: 'E2EE_LOG_LEVEL', shown: 'info', meaning: 'Node-RED\'s log level' },
  { name: 'E2EE_DATABASE_URL', shown: 'unset', meaning: 'a PostgreSQL connection string' },
  { name: 'E2EE_DB_POOL', shown: '10', meaning: 'connections this instance keeps to PostgreSQL' },
  { name: 'E2EE_TRUST_PROXY', shown: 'unset', meaning: 'Express\'s `trust proxy`' },
  { name: 'E2EE_MQTT', shown: 'embedded', meaning: 'the MQTT transport: `embedded`, `mqtt://user:pass@host:port` or `off`' },
  { name: 'E2EE_MQTT_HOST', shown: '127.0.0.1', meaning: 'the embedded broker\'s listen address' },
  { name: 'E2EE_MQTT_PORT', shown: '1883', meaning: 'the embedded broker\'s port' },
  { name: 'E2EE_MQTT_PREFIX', shown: '`esp-e2ee`', meaning: 'the topic prefix' },
];

export interface Settings {
  port: number;
  host: string;
  adminPort: number;
  adminHost: string;
  dataDir: string;
  /** The Node-RED user directory inside the data directory. */
  userDir: string;
  auth: 'hmac-sha256' | 'none';
  editor: boolean;
  rateLimit?: string;
  /** '' keeps every reading. */
  retention: string;
  pushAllow?: string;
  maxDevices?: number;
  /** '' is the store's default. */
  commandTtl: string;
  /** SQLite: what an acknowledged write survives (power cut, or only a crash of the process). */
  durability: 'power' | 'process';
  rejectionLogInterval?: number;
  logLevel: string;
  /** '' for the embedded SQLite. */
  databaseUrl: string;
  /** '' is the store's default. */
  dbPool: string;
  /** Express's "trust proxy": a hop count, or addresses (loopback, a CIDR). */
  trustProxy?: number | string;
  /** Another Node-RED install to run on (the tests use it for Node-RED 5). */
  nodeRedDir?: string;
  /** The MQTT transport (E2EE_MQTT): off in auth none (MQTT carries the sealed protocol only). */
  mqtt: MqttSettings;
}

export class SettingsError extends Error {}

type Env = Record<string, string | undefined>;

function port(env: Env, name: string, fallback: number, problems: string[]): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) problems.push(`${name} must be a port number (0 to 65535), not ${JSON.stringify(raw.slice(0, 20))}`);
  return n;
}

function positive(env: Env, name: string): number | undefined {
  const n = Number(env[name]);
  return n > 0 ? n : undefined;
}

/** E2EE_MQTT and its companions: the embedded broker (default), the user's broker (a URL), or none. */
function mqttSettings(env: Env, plain: boolean, problems: string[]): MqttSettings {
  let prefix = 'esp-e2ee';
  try {
    prefix = checkPrefix(env.E2EE_MQTT_PREFIX);
  } catch {
    problems.push(`E2EE_MQTT_PREFIX must be topic levels without + or # and not start with $, not ${JSON.stringify(String(env.E2EE_MQTT_PREFIX).slice(0, 40))}`);
  }
  const raw = (env.E2EE_MQTT || 'embedded').trim();
  const embedded: MqttSettings = { mode: 'embedded', host: env.E2EE_MQTT_HOST || '127.0.0.1', port: port(env, 'E2EE_MQTT_PORT', 1883, problems), prefix };
  if (raw === 'off' || plain) return { ...embedded, mode: 'off' };
  if (raw === 'embedded') return embedded;
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== 'mqtt:' || !url.hostname) {
    problems.push('E2EE_MQTT must be embedded, off, or mqtt://user:password@host:port (your own broker)');
    return { ...embedded, mode: 'off' };
  }
  return {
    mode: 'external',
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : 1883,
    user: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
    prefix,
  };
}

const isWildcardHost = (host: string) => host === '0.0.0.0' || host === '::';

/** E2EE_DURABILITY: power (the default) or process. */
function durabilityOf(env: Env, problems: string[]): 'power' | 'process' {
  const v = env.E2EE_DURABILITY || 'power';
  if (v === 'power' || v === 'process') return v;
  problems.push(`E2EE_DURABILITY must be power or process, not ${JSON.stringify(v.slice(0, 20))}`);
  return 'power';
}

/** All of npm start's settings from the environment; a SettingsError names every variable that is wrong. */
export function readSettings(env: Env, root: string): Settings {
  const problems: string[] = [];
  const dataDir = path.resolve(env.E2EE_DATA_DIR || path.join(root, 'data'));
  const auth = env.E2EE_AUTH || 'hmac-sha256';
  if (auth !== 'hmac-sha256' && auth !== 'none') problems.push(`E2EE_AUTH must be hmac-sha256 or none, not ${JSON.stringify(auth.slice(0, 20))}`);
  const trust = env.E2EE_TRUST_PROXY;
  const settings: Settings = {
    port: port(env, 'PORT', 1880, problems),
    host: env.HOST || '127.0.0.1',
    adminPort: port(env, 'E2EE_ADMIN_PORT', 1881, problems),
    adminHost: env.E2EE_ADMIN_HOST || '127.0.0.1',
    dataDir,
    userDir: path.join(dataDir, 'node-red'),
    auth: auth as Settings['auth'],
    editor: (env.E2EE_EDITOR || 'on') !== 'off',
    rateLimit: env.E2EE_RATE_LIMIT,
    // The flow's device-store keeps readings for ${E2EE_RETENTION}: 90 days unless set ('' keeps everything).
    retention: env.E2EE_RETENTION ?? '90d',
    pushAllow: env.E2EE_PUSH_ALLOW,
    maxDevices: positive(env, 'E2EE_MAX_DEVICES'),
    commandTtl: env.E2EE_COMMAND_TTL ?? '',
    durability: durabilityOf(env, problems),
    rejectionLogInterval: positive(env, 'E2EE_REJECTION_LOG_INTERVAL'),
    logLevel: env.E2EE_LOG_LEVEL || 'info',
    databaseUrl: (env.E2EE_DATABASE_URL || '').trim(),
    dbPool: env.E2EE_DB_POOL ?? '',
    trustProxy: trust ? (/^\d+$/.test(trust) ? Number(trust) : trust) : undefined,
    nodeRedDir: env.E2EE_NODE_RED ? path.resolve(env.E2EE_NODE_RED) : undefined,
    mqtt: mqttSettings(env, auth === 'none', problems),
  };
  if (problems.length > 0) throw new SettingsError(problems.join('\n'));
  return settings;
}

/**
 * The variables the shipped flow refers to (`${E2EE_KEY}` in its credentials, `${E2EE_RETENTION}` in its store, ...):
 * Node-RED substitutes them when it creates the nodes, so they are set in this process's environment.
 */
export function flowEnvironment(settings: Settings, secrets: { key: string; token: string }): Record<string, string> {
  const { mqtt } = settings;
  // The backend's broker credential: its own derived one on the embedded broker (and on a Mosquitto set up with
  // esp-e2ee-keys --mosquitto), else the URL's.
  const derived = /^[0-9a-fA-F]{32,64}$/.test(secrets.key) ? backendBrokerPassword(Buffer.from(secrets.key, 'hex')) : '';
  // Several instances share one database: on a broker that has them (Mosquitto; not the embedded one), a shared
  // subscription hands each uplink to one instance.
  const subscriptions = backendSubscriptions(mqtt.prefix, settings.databaseUrl !== '' && mqtt.mode === 'external');
  return {
    E2EE_MQTT_HOST: mqtt.mode === 'embedded' && isWildcardHost(mqtt.host) ? '127.0.0.1' : mqtt.host,
    E2EE_MQTT_PORT: String(mqtt.port),
    E2EE_MQTT_USER: mqtt.user ?? BACKEND_BROKER_USER,
    E2EE_MQTT_PASSWORD: mqtt.password ?? derived,
    E2EE_MQTT_PREFIX: mqtt.prefix,
    E2EE_MQTT_UPLINKS: subscriptions.uplinks,
    E2EE_MQTT_STATUS: subscriptions.status,
    // One persistent session per instance (its port and data dir), kept across its restarts.
    E2EE_MQTT_CLIENT_ID: `esp-e2ee-${crypto.createHash('sha256').update(`${settings.dataDir}:${settings.port}`).digest('hex').slice(0, 12)}`,
    E2EE_KEY: secrets.key,
    E2EE_ADMIN_TOKEN: secrets.token,
    // Where flows reach this backend's own API (the dashboard example's command button).
    E2EE_API_URL: `http://${isWildcardHost(settings.host) ? '127.0.0.1' : settings.host.includes(':') ? `[${settings.host}]` : settings.host}:${settings.port}`,
    E2EE_RETENTION: settings.retention,
    E2EE_COMMAND_TTL: settings.commandTtl,
    E2EE_DURABILITY: settings.durability,
    E2EE_DATABASE_URL: settings.databaseUrl,
    E2EE_STORE_BACKEND: settings.databaseUrl ? 'postgresql' : 'sqlite',
    E2EE_DB_POOL: settings.dbPool,
  };
}
