import { DeviceKeyring, E2eeError, KeyMaterial } from '../lib';
import type { Node, RED } from './red';

export interface AesKeyNode extends Node {
  format: string;
  auth: string;
  scope: 'shared' | 'per-device';
  /** Parsed key material of a shared key; absent when the configuration is invalid or the scope is per-device. */
  material?: KeyMaterial;
  /** Per-device scope: the device keys under the configured master key. */
  keyring?: DeviceKeyring;
  /** Why the configuration is invalid, as a library error (never contains the key). */
  keyError?: E2eeError;
}

/** The device a message is from or for, with its key version (msg.deviceid, msg.keyVersion). */
export interface KeyTarget {
  deviceid: string;
  keyVersion?: unknown;
}

/**
 * Looks up an aes-key config node and returns the key material for a message, or throws the error a worker node
 * should report: the shared key, or in per-device scope the key of the message's device (which must be named).
 */
export function resolveKey(red: RED, id: unknown, target: KeyTarget): KeyMaterial {
  const keyNode = typeof id === 'string' && id ? (red.nodes.getNode(id) as AesKeyNode | null) : null;
  if (!keyNode) throw new E2eeError('no-key');
  if (keyNode.keyring) {
    if (!target.deviceid) throw new E2eeError('no-deviceid');
    const v = target.keyVersion;
    const version = v === undefined || v === null || v === '' ? 0 : typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : NaN;
    return keyNode.keyring.material(target.deviceid, version);
  }
  if (!keyNode.material) throw keyNode.keyError ?? new E2eeError('no-key');
  return keyNode.material;
}
