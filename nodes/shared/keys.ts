import { DeviceAuth, DeviceKeyring, E2eeError, KeyMaterial, OpenedKey } from '../lib';
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

export interface ResolvedKey {
  key: KeyMaterial;
  /** Per-device scope: the device key's version. */
  keyVersion?: number;
  /** Per-device scope: the keyring (for a rekey command's public key). */
  keyring?: DeviceKeyring;
  /** The pending version opened through the rekey's key exchange: the new key wrapped, for the replay guard to keep. */
  keywrap?: string;
}

/** The aes-key config node of an id, or undefined. */
export function keyNodeOf(red: RED, id: unknown): AesKeyNode | undefined {
  return (typeof id === 'string' && id ? (red.nodes.getNode(id) as AesKeyNode | null) : null) ?? undefined;
}

/**
 * Looks up an aes-key config node and returns the key material for a message, or throws the error a worker node
 * should report: the shared key, or in per-device scope the key of the message's device (which must be named).
 */
export function resolveKey(red: RED, id: unknown, target: KeyTarget & { epk?: Buffer }): ResolvedKey | Promise<ResolvedKey> {
  const keyNode = usableKeyNode(red, id);
  const keyring = keyNode.keyring;
  if (!keyring) return { key: keyNode.material as KeyMaterial };
  if (!target.deviceid) throw new E2eeError('no-deviceid');
  const v = target.keyVersion;
  const version = v === undefined || v === null || v === '' ? 0 : typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : NaN;
  // The device store may know the key (a rekey made it): a value when it answers from memory, else a promise.
  const resolved = (opened: OpenedKey): ResolvedKey => ({ key: opened.material, keyVersion: version, keyring, ...(opened.keywrap ? { keywrap: opened.keywrap } : {}) });
  const opened = keyring.open(target.deviceid, version, target.epk);
  return opened instanceof Promise ? opened.then(resolved) : resolved(opened);
}

/** The aes-key config node of an id when it holds a usable key; else throws the configuration error (no-key, bad-key...). */
export function usableKeyNode(red: RED, id: unknown): AesKeyNode {
  const keyNode = keyNodeOf(red, id);
  if (!keyNode) throw new E2eeError('no-key');
  if (!keyNode.keyring && !keyNode.material) throw keyNode.keyError ?? new E2eeError('no-key');
  return keyNode;
}

/** How devices authenticate under an aes-key (for the registry): undefined without a usable key node. */
export function deviceAuthOf(red: RED, id: unknown): DeviceAuth | undefined {
  const keyNode = keyNodeOf(red, id);
  if (!keyNode || (!keyNode.keyring && !keyNode.material)) return undefined;
  return { acknowledged: keyNode.auth === 'hmac-sha256', perDevice: keyNode.keyring !== undefined, rekey: keyNode.keyring?.canRekey === true };
}
