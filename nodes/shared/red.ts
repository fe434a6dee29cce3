/**
 * The slice of the Node-RED runtime API these nodes use. Declared here rather
 * than imported so the package has no runtime dependency on node-red.
 */
import type { Done, NodeStatus, Send } from '../lib';

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  [key: string]: unknown;
}

export interface Node {
  id: string;
  credentials?: Record<string, string | undefined>;
  on(event: 'input', handler: (msg: Msg, send: Send, done: Done) => void): void;
  on(event: 'close', handler: (removed: boolean, done: () => void) => void): void;
  status(status: NodeStatus | Record<string, never>): void;
  /** Sends a message on the node's output (a node without an input, such as device-events). */
  send(msg: Msg): void;
  warn(message: string): void;
  error(message: string | Error, msg?: Msg): void;
  log(message: string): void;
  debug(message: string): void;
}

export type Msg = Record<string, unknown> & { payload?: unknown; _msgid?: string };

export interface RED {
  nodes: {
    createNode(node: Node, def: NodeDef): void;
    registerType<N extends Node>(type: string, ctor: (this: N, def: NodeDef) => void, opts?: { credentials?: Record<string, { type: string }> }): void;
    getNode(id: string): Node | null;
  };
  util: {
    getMessageProperty(msg: Msg, path: string): unknown;
    setMessageProperty(msg: Msg, path: string, value: unknown, createMissing?: boolean): boolean;
  };
  settings: Record<string, unknown> & { userDir?: string };
  _: (key: string, params?: Record<string, unknown>) => string;
  log: { info(m: string): void; warn(m: string): void; error(m: string): void };
  httpAdmin?: unknown;
  /** The express app of http in routes (absent when httpNodeRoot is false). */
  httpNode?: { use(middleware: unknown): void };
  auth?: { needsPermission(permission: string): unknown };
}
