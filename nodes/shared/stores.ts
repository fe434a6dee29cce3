import * as path from 'node:path';
import { E2eeError } from '../lib';
import type { DeviceEvents, DeviceStore } from '../lib';
import type { Node, RED } from './red';

export const DEFAULT_STORE_FILE = 'esp-e2ee.sqlite';
export const DEFAULT_HEARTBEAT_S = 300;

export interface DeviceStoreNode extends Node {
  store: DeviceStore;
  /** Its readings and device events, for device-events nodes (users' flows). */
  events: DeviceEvents;
  /** Seconds after the last contact a device still counts as online. */
  heartbeat: number;
  file: string;
  /** The retention in words ("at most 30d old, the newest 1000 per device"). */
  retention: string;
  /** How long an unacknowledged command waits before it expires ("7d"). */
  commandTtl: string;
}

/** Every open device-store, by node id: the editor's Devices sidebar lists their devices. */
export const openStores = new Map<string, DeviceStoreNode>();

/** The database file for a device-store's `path`: relative paths (and the default) live in the userDir. */
export function storeFile(configured: unknown, userDir: string | undefined): string {
  const base = userDir ?? process.cwd();
  const p = typeof configured === 'string' && configured.trim() !== '' ? configured.trim() : DEFAULT_STORE_FILE;
  return path.resolve(base, p);
}

/** Looks up a device-store config node, or throws the error a worker node reports. */
export function resolveStore(red: RED, id: unknown): DeviceStoreNode {
  const node = typeof id === 'string' && id ? (red.nodes.getNode(id) as DeviceStoreNode | null) : null;
  if (!node || !node.store) throw new E2eeError('no-store');
  return node;
}
