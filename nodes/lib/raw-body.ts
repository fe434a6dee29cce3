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

/** Express middleware: POSTs to the readings route get `req.body` as a Buffer of at most `limit` bytes. */
export function rawReadingsBody(limit = READINGS_BODY_LIMIT) {
  return (req: RawBodyRequest, _res: unknown, next: (err?: unknown) => void): void => {
    if (req.method !== 'POST' || req._body || !READINGS_ROUTE.test(req.path)) {
      next();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk) => {
      if (size <= limit) chunks.push(chunk);
      size += chunk.length;
    });
    req.on('end', () => {
      req.body = Buffer.concat(chunks);
      req._body = true;
      next();
    });
    req.on('error', next);
  };
}

