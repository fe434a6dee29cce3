/**
 * The Node-RED user directory inside the data directory: the package linked into it, and on first start the shipped
 * flow with its key node set to the auth mode, and credentials that refer to environment variables only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encryptCredentials } from './secrets';
import type { Settings } from './settings';

interface FlowNode {
  id: string;
  type: string;
  [key: string]: unknown;
}

export const PACKAGE_NAME = 'node-red-contrib-esp-e2ee';

/** Links a package (this one by default) into the user directory's node_modules. */
export function linkPackage(userDir: string, name: string, dir: string): void {
  const target = path.join(userDir, 'node_modules', name);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  try {
    if (fs.realpathSync(target) === dir) return;
    fs.rmSync(target, { recursive: true, force: true });
  } catch {
    // not there yet
  }
  fs.symlinkSync(dir, target, 'dir');
}

export function flowFileOf(settings: Settings): string {
  return path.join(settings.userDir, 'flows.json');
}

function readFlow(file: string): FlowNode[] {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as FlowNode[];
}

/**
 * Writes the shipped flow and its credentials on first start. hmac-sha256: a master key and a key per device; none:
 * the seed's one shared key (crypto-js / blog firmware). The credentials hold `${E2EE_KEY}` and friends, never the
 * secrets themselves.
 */
export function writeInitialFlow(root: string, settings: Settings, credentialSecret: string): void {
  const flowFile = flowFileOf(settings);
  if (fs.existsSync(flowFile)) return;
  const flow = readFlow(path.join(root, 'flows', 'esp-e2ee.json'));
  for (const n of flow) {
    if (n.type !== 'aes-key') continue;
    n.auth = settings.auth;
    n.scope = settings.auth === 'none' ? 'shared' : 'per-device';
  }
  fs.writeFileSync(flowFile, JSON.stringify(flow, null, 2));
  const keyNode = flow.find((n) => n.type === 'aes-key') as FlowNode;
  const storeNode = flow.find((n) => n.type === 'device-store') as FlowNode;
  const brokerNode = flow.find((n) => n.type === 'mqtt-broker');
  const creds = {
    [keyNode.id]: { key: '${E2EE_KEY}' },
    [storeNode.id]: { token: '${E2EE_ADMIN_TOKEN}', database: '${E2EE_DATABASE_URL}' },
    ...(brokerNode ? { [brokerNode.id]: { user: '${E2EE_MQTT_USER}', password: '${E2EE_MQTT_PASSWORD}' } } : {}),
  };
  fs.writeFileSync(path.join(settings.userDir, 'flows_cred.json'), JSON.stringify(encryptCredentials(creds, credentialSecret)), { mode: 0o600 });
}

/**
 * The flow's MQTT edge on or off, as E2EE_MQTT says at this start: its mqtt in and mqtt out nodes are disabled when
 * off (the broker node then never connects). Written only when it changes.
 */
export function switchMqtt(settings: Settings): void {
  const file = flowFileOf(settings);
  const flow = readFlow(file);
  const off = settings.mqtt.mode === 'off';
  let changed = false;
  for (const n of flow) {
    if ((n.type === 'mqtt in' || n.type === 'mqtt out') && n.broker === 'e2ee-mqtt-broker' && (n.d === true) !== off) {
      if (off) n.d = true;
      else delete n.d;
      changed = true;
    }
  }
  if (changed) fs.writeFileSync(file, JSON.stringify(flow, null, 2));
}

/**
 * A flow written before E2EE_DURABILITY existed gets its device store's durability from it (the store's default is
 * `power`, the same as the variable's). Written only when it changes.
 */
export function adoptDurability(settings: Settings): void {
  const file = flowFileOf(settings);
  const flow = readFlow(file);
  const store = flow.find((n) => n.type === 'device-store' && n.id === 'e2ee-store');
  if (!store || store.durability !== undefined) return;
  store.durability = '${E2EE_DURABILITY}';
  fs.writeFileSync(file, JSON.stringify(flow, null, 2));
}

/** Why the flow in the user directory cannot serve these settings (an older flow), or undefined. */
export function flowMismatch(settings: Settings): string | undefined {
  if (!settings.databaseUrl) return undefined;
  const store = readFlow(flowFileOf(settings)).find((n) => n.type === 'device-store');
  if (store?.backend === '${E2EE_STORE_BACKEND}') return undefined;
  return `E2EE_DATABASE_URL is set, but the flow in ${settings.userDir} predates PostgreSQL support and would keep using SQLite: use a new E2EE_DATA_DIR.`;
}

/** The flow's key: a master with a key per device, or one key for all (an older data dir, or E2EE_AUTH=none). */
export function keyScope(settings: Settings): 'per-device' | 'shared' {
  const key = readFlow(flowFileOf(settings)).find((n) => n.type === 'aes-key');
  return key?.scope === 'per-device' ? 'per-device' : 'shared';
}
