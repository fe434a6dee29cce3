/**
 * One input funnel for every node: it runs the node's handler, sends what it
 * returns, and turns any failure into a catalog message, a red status and
 * `done(err)`, so a Catch node can answer. No Node-RED import: the node
 * passes in what the funnel needs.
 */
import { isE2eeError } from './errors';

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export interface StatusTarget {
  status(status: NodeStatus | Record<string, never>): void;
}

export type Translate = (key: string, params?: Record<string, unknown>) => string;
export type Send = (msg: unknown) => void;
export type Done = (err?: Error) => void;

/** The catalog text for an error. Library errors map to `e2ee.errors.<code>`; anything else is reported as internal. */
export function errorText(err: unknown, translate: Translate): string {
  if (isE2eeError(err)) return translate(`e2ee.errors.${err.code}`, err.params);
  const message = err instanceof Error ? err.message : String(err);
  return translate('e2ee.errors.internal', { message });
}

/** What a handler returns: a message or array for `send`, or nothing to send. */
export type HandlerResult = unknown;

export function inputFunnel<M>(
  node: StatusTarget,
  translate: Translate,
  handler: (msg: M) => HandlerResult | Promise<HandlerResult>,
): (msg: M, send: Send, done: Done) => void {
  let showingError = false;
  return (msg, send, done) => {
    const ok = (out: HandlerResult) => {
      if (showingError) {
        showingError = false;
        node.status({});
      }
      if (out !== undefined && out !== null) send(out);
      done();
    };
    const fail = (err: unknown) => {
      const text = errorText(err, translate);
      // The device store could not answer (a lookup on the way, e.g. a rekeyed device's key): not a rejection but
      // "try again later", as the replay guard says it, so the flow's rejection answer is a 503, not a 400.
      if ((err as { name?: unknown } | null)?.name === 'StorageUnavailableError' && msg && typeof msg === 'object') {
        (msg as { rejected?: unknown }).rejected = { reason: 'storage-unavailable' };
      }
      showingError = true;
      node.status({ fill: 'red', shape: 'ring', text });
      done(new Error(text));
    };
    let result: HandlerResult | Promise<HandlerResult>;
    try {
      result = handler(msg);
    } catch (err) {
      fail(err);
      return;
    }
    if (result instanceof Promise) result.then(ok, fail);
    else ok(result);
  };
}
