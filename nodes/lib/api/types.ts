/** What the registry's actions take and give: one request shape, one response shape, for every action. */
import type { Translate } from '../common';
import type { PushPolicy, PushVerdict } from '../downlink';
import type { DeviceStore } from '../store';
import type { DeviceEvents, Transport } from '../registry';

/** How the devices talk to this registry: what its aes-key says. */
export interface DeviceAuth {
  /**
   * Devices authenticate (hmac-sha256): registration and the config poll must come sealed, and a command counts as
   * delivered only when the device acknowledges it.
   */
  acknowledged: boolean;
  /** Keys are per device. */
  perDevice: boolean;
  /** Per-device keys with a vault for the keys rekeys make (the aes-key names a device store): devices can be rekeyed. */
  rekey?: boolean;
}

/** A request that came through aes-decrypt: its body is the decrypted plaintext. */
export interface SealedRequest {
  /** The MAC was verified (hmac-sha256). */
  authenticated: boolean;
  /** The per-device key version it was sealed with. */
  keyver?: number;
}

export const REGISTRY_ACTIONS = ['register', 'get', 'update', 'list', 'log', 'readings', 'remove', 'reset', 'command', 'queue-command', 'command-delivered', 'rekey', 'commands', 'health', 'status'] as const;
export type RegistryAction = (typeof REGISTRY_ACTIONS)[number];

export interface ActionRequest {
  action: string;
  deviceid: unknown;
  /** msg.payload: the request body, or the query of a GET. */
  body: unknown;
  heartbeatMs: number;
  now?: number;
  /** When set, the request must carry `Authorization: Bearer <token>` matching `token`. */
  auth?: { header: unknown; token: string | undefined };
  /** msg.seqn: the command a queue-command or command-delivered step is about. */
  seqn?: unknown;
  /** queue-command: which registered addresses may be pushed to; without one, none is. */
  push?: PushPolicy;
  /** register: the most devices the store may hold. */
  maxDevices?: number;
  /** How devices authenticate (from the registry's aes-key); absent: the seed's plain protocol. */
  deviceAuth?: DeviceAuth;
  /** Set when the request came through aes-decrypt (msg.e2ee). */
  sealed?: SealedRequest;
  /**
   * The source address of a sealed uplink (register, poll, log) that came through aes-decrypt and the replay guard:
   * recorded as where commands are pushed.
   */
  source?: string;
  /** The transport a sealed uplink came over (msg.transport, set by the flow's MQTT edge; else http). */
  transport?: Transport;
  /** The store's events (readings and device events for users' flows); absent: none are reported. */
  events?: DeviceEvents;
}

export interface ActionResponse {
  statusCode: number;
  payload: unknown;
  /** Total rows, for list. */
  total?: number;
  /** Something an operator did that belongs in the log (catalog text). */
  audit?: string;
  /** Response headers. */
  headers?: Record<string, string>;
  /** command: the allocated downlink SEQN. */
  seqn?: number;
  /** queue-command: where to push the command, when the device's address may be pushed to. */
  pushUrl?: string;
  /** queue-command: the device talks MQTT; publish the command to its downlink topic now. */
  publish?: boolean;
  /** queue-command: the device's address may not be pushed to (the command waits for its poll). */
  pushRefused?: { address: string; verdict: Exclude<PushVerdict, 'allowed'> };
  /** The per-device key version to seal the answer or command with (msg.keyVersion). */
  keyVersion?: number;
  /** log: the answer is a config answer to seal (a sleeper's reading), not the plain {"status":"OK"} (msg.answer). */
  answer?: 'config';
}

/** What every handler gets: the store, the request, its time, its device id (validated), and the answer helpers. */
export interface ActionContext {
  store: DeviceStore;
  req: ActionRequest;
  t: Translate;
  now: number;
  /** The validated device id ('' for the actions that take none). */
  deviceid: string;
  /** Devices acknowledge commands (hmac-sha256). */
  acknowledged: boolean;
  nok(statusCode: number, key: string, params?: Record<string, unknown>): ActionResponse;
  notRegistered(): ActionResponse;
}

export type ActionHandler = (ctx: ActionContext) => Promise<ActionResponse>;
