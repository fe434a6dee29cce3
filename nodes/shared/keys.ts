import { E2eeError, KeyMaterial } from '../lib';
import type { Node, RED } from './red';

export interface AesKeyNode extends Node {
  format: string;
  auth: string;
  /** Parsed key material; absent when the configuration is invalid. */
  material?: KeyMaterial;
  /** Why the configuration is invalid, as a library error (never contains the key). */
  keyError?: E2eeError;
}

/** Looks up an aes-key config node and returns its key material, or throws the error a worker node should report. */
export function resolveKey(red: RED, id: unknown): KeyMaterial {
  const keyNode = typeof id === 'string' && id ? (red.nodes.getNode(id) as AesKeyNode | null) : null;
  if (!keyNode) throw new E2eeError('no-key');
  if (!keyNode.material) throw keyNode.keyError ?? new E2eeError('no-key');
  return keyNode.material;
}

