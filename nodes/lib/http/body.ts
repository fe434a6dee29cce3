/**
 * The readings route's body, read raw. Node-RED's http in node parses JSON bodies itself and answers a body
 * that is not JSON with a 500 of its own, before the flow sees it; and its "raw body" option does not apply to
 * routes with parameters. Reading the body first and handing it on as a Buffer lets the flow give a bad body
 * the same 400 as every other rejected reading (aes-decrypt parses and checks it). The device-registry module
 * installs this on Node-RED's httpNode, so the shipped flow answers alike under `npm start` and imported into
 * any Node-RED.
 *
 * Where the editor shares the root with the flows (Node-RED's default: httpAdminRoot and httpNodeRoot both `/`),
 * the editor's own app parses every JSON body first and answers a bad one with Express's 400 page before httpNode
 * sees the request; a node package cannot change that. Setting httpAdminRoot (e.g. `/admin`), or serving the
 * editor on a listener of its own as `npm start` does, gives the readings route its uniform answer there too.
 */

import { READINGS_ROUTE, routeOf } from './routes';

/** Largest readings body: a larger one gets 413 (aes-decrypt's own, smaller limit rejects the rest with the uniform 400). */
export const READINGS_BODY_LIMIT = 1024 * 1024;

/**
 * After a 413, the rest of a body is read and dropped up to this many bytes more (so a client that is still
 * sending gets to read the answer); past it, the connection is closed.
 */
export const DISCARD_LIMIT = 1024 * 1024;

/** How long a connection past DISCARD_LIMIT stays open, unread, so the client can read its 413 before it closes. */
const CLOSE_AFTER_MS = 1000;

export interface RawBodyRequest {
  method?: string;
  path: string;
  body?: unknown;
  /** body-parser's flag: a body is already read, so later parsers skip it. */
  _body?: boolean;
  socket?: { destroy(): void };
  pause?(): void;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

interface JsonResponse {
  status(code: number): JsonResponse;
  set(field: string, value: string): JsonResponse;
  json(body: unknown): void;
}

type Translate = (key: string, params?: Record<string, unknown>) => string;

/**
 * Reads a request body, keeping at most `limit` bytes. Within the limit, `done` gets the body. Past it, the request
 * is answered 413 at once (catalog key e2ee.registry.too-large-body); the rest is dropped while it is read, and a
 * body more than DISCARD_LIMIT past the limit is no longer read and has its connection closed a moment later.
 */
function readBody(req: RawBodyRequest, res: JsonResponse, t: Translate, limit: number, done: (body: Buffer) => void, fail: (err: Error) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  let stopped = false;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
    else if (size - chunk.length <= limit) {
      chunks.length = 0;
      // A 413 as JSON. (No "Connection: close": Node would close right after the answer, and the data the client is
      // still sending would reset the connection before the client has read the 413. The rest is drained below.)
      res.status(413).json({ status: 'NOK', message: t('e2ee.registry.too-large-body', { max: limit }) });
    } else if (size > limit + DISCARD_LIMIT && !stopped) {
      // Stop reading rather than reset at once: a reset can reach the client before it has read the 413 (it is
      // still sending). Paused, the client's sending stalls while it reads the answer; the connection goes soon after.
      stopped = true;
      req.pause?.();
      setTimeout(() => req.socket?.destroy(), CLOSE_AFTER_MS).unref();
    }
  });
  req.on('end', () => {
    if (size <= limit && !failed) done(Buffer.concat(chunks));
  });
  req.on('error', (err) => {
    failed = true;
    if (size <= limit) fail(err);
  });
}

/**
 * Express middleware: POSTs to the readings route get `req.body` as a Buffer; a body over `limit` gets 413
 * `{status: "NOK", message}` (catalog key e2ee.registry.too-large-body) as soon as the limit is passed.
 */
export function rawReadingsBody(t: Translate, limit = READINGS_BODY_LIMIT) {
  return (req: RawBodyRequest, res: JsonResponse, next: (err?: unknown) => void): void => {
    if (req.method !== 'POST' || req._body || !READINGS_ROUTE.test(req.path)) {
      next();
      return;
    }
    readBody(req, res, t, limit, (body) => {
      req.body = body;
      req._body = true;
      next();
    }, next);
  };
}

/**
 * Largest body of the other API routes. A sealed registration or poll is a few hundred bytes; the largest valid body
 * is an update with 16 KiB of config data (MAX_DATA_BYTES, as compact JSON), which a client escaping its strings may
 * send at up to about 6 bytes a character: 128 KiB holds that, and bounds what a request without a key can make the
 * process hold to an eighth of the readings route's limit.
 */
export const API_BODY_LIMIT = 128 * 1024;

interface ApiRequest extends RawBodyRequest {
  headers: Record<string, string | string[] | undefined>;
}

/** A body that is not JSON, as Node-RED's http in would hand it on: text when it is UTF-8 text, else the bytes. */
function otherBody(type: string, body: Buffer): string | Buffer {
  const binary = type === 'application/octet-stream' || type === 'application/cbor' || type === 'application/x-protobuf' || (type !== '' && !type.startsWith('text/') && !type.startsWith('application/'));
  if (binary) return body;
  const text = body.toString('utf8');
  return Buffer.byteLength(text, 'utf8') === body.length && !text.includes('\ufffd') ? text : body;
}

/**
 * Express middleware for every body on the device API's other routes (register, poll, update, remove, commands,
 * rekey, reset), whatever its content type: read here with the limit enforced while bytes arrive, so that no body
 * is read whole before an answer (Node-RED's http in reads text, binary and untyped bodies without a limit). A
 * JSON body is parsed: a malformed one gets 400 and an oversized one 413, both as `{status: "NOK", message}` (catalog
 * keys e2ee.registry.bad-json and e2ee.registry.too-large-body), not Node-RED's bare 500. Any other body is handed
 * on as text or bytes, as Node-RED would, and the registry refuses it.
 */
export function deviceApiJsonBodies(t: Translate, limit = API_BODY_LIMIT) {
  return (req: ApiRequest, res: JsonResponse, next: (err?: unknown) => void): void => {
    // Every request to every http in route passes here: the cheap tests first.
    // (Node-RED's http in parses the bodies of DELETE requests too.)
    if (req._body || (req.method !== 'POST' && req.method !== 'PUT' && req.method !== 'PATCH' && req.method !== 'DELETE') || !routeOf(req.path) || READINGS_ROUTE.test(req.path)) {
      next();
      return;
    }
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const json = type === 'application/json' || type.endsWith('+json');
    readBody(req, res, t, limit, (body) => {
      if (!json) {
        req.body = otherBody(type, body);
        req._body = true;
        next();
        return;
      }
      const text = body.toString('utf8');
      try {
        req.body = text.trim() === '' ? {} : JSON.parse(text);
      } catch {
        res.status(400).json({ status: 'NOK', message: t('e2ee.registry.bad-json') });
        return;
      }
      req._body = true;
      next();
    }, next);
  };
}
