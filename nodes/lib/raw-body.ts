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
 * sees the request; a node package cannot change that. Setting httpAdminRoot (e.g. `/admin`, as `npm start`
 * does) gives the readings route its uniform answer there too.
 */

/** The shipped readings route, relative to httpNodeRoot. */
export const READINGS_ROUTE = /^\/api\/devices\/[^/]+\/readings\/?$/;

/** Largest readings body kept; the rest is read and dropped, and aes-decrypt's own limit rejects the message. */
export const READINGS_BODY_LIMIT = 1024 * 1024;

export interface RawBodyRequest {
  method?: string;
  path: string;
  body?: unknown;
  /** body-parser's flag: a body is already read, so later parsers skip it. */
  _body?: boolean;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * Reads a request body, keeping at most `limit` bytes: `done` gets what was kept and whether the body was
 * longer. `overLimit` is called once, as soon as the limit is passed (the rest is still read, not kept).
 */
function readBody(req: RawBodyRequest, limit: number, done: (body: Buffer, tooLarge: boolean) => void, fail: (err: Error) => void, overLimit?: () => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
    else if (size - chunk.length <= limit) overLimit?.();
  });
  req.on('end', () => done(Buffer.concat(chunks), size > limit));
  req.on('error', fail);
}

/** Express middleware: POSTs to the readings route get `req.body` as a Buffer of at most `limit` bytes. */
export function rawReadingsBody(limit = READINGS_BODY_LIMIT) {
  return (req: RawBodyRequest, _res: unknown, next: (err?: unknown) => void): void => {
    if (req.method !== 'POST' || req._body || !READINGS_ROUTE.test(req.path)) {
      next();
      return;
    }
    readBody(req, limit, (body) => {
      // An oversized body goes on cut short: aes-decrypt's own, smaller limit rejects it like any reading.
      req.body = body;
      req._body = true;
      next();
    }, next);
  };
}

/** The device API's routes other than readings, relative to httpNodeRoot. */
export const DEVICE_API_ROUTE = /^\/api\/devices(\/|$)/;

/** Largest JSON body of the other device API routes (a register or an update is a few hundred bytes). */
export const API_BODY_LIMIT = 1024 * 1024;

interface ApiRequest extends RawBodyRequest {
  headers: Record<string, string | string[] | undefined>;
}
interface ApiResponse {
  status(code: number): ApiResponse;
  json(body: unknown): void;
}

/**
 * Express middleware for the device API's JSON bodies (register, update, commands, reset): Node-RED's http in
 * node answers a malformed or oversized JSON body with a bare 500. Here a malformed one gets 400 and an
 * oversized one 413, cut off while reading, both as `{status: "NOK", message}` with the message from `t`
 * (catalog keys e2ee.registry.bad-json and e2ee.registry.too-large-body). A good body is parsed and handed on.
 */
export function deviceApiJsonBodies(t: (key: string, params?: Record<string, unknown>) => string, limit = API_BODY_LIMIT) {
  return (req: ApiRequest, res: ApiResponse, next: (err?: unknown) => void): void => {
    // Every request to every http in route passes here: the cheap tests first.
    if (req._body || (req.method !== 'POST' && req.method !== 'PUT' && req.method !== 'PATCH') || !DEVICE_API_ROUTE.test(req.path) || READINGS_ROUTE.test(req.path)) {
      next();
      return;
    }
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json' && !type.endsWith('+json')) {
      next();
      return;
    }
    let answered = false;
    readBody(
      req,
      limit,
      (body, tooLarge) => {
        if (tooLarge) return;
        const text = body.toString('utf8');
        try {
          req.body = text.trim() === '' ? {} : JSON.parse(text);
        } catch {
          res.status(400).json({ status: 'NOK', message: t('e2ee.registry.bad-json') });
          return;
        }
        req._body = true;
        next();
      },
      (err) => {
        if (!answered) next(err);
      },
      () => {
        // Answered at once; the rest is read and dropped (closing at once would reset a client that is still
        // sending, before it reads the answer).
        answered = true;
        res.status(413).json({ status: 'NOK', message: t('e2ee.registry.too-large-body', { max: limit }) });
      },
    );
  };
}
