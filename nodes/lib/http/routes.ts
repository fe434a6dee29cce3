/**
 * The shipped flow's HTTP API as a table, and the Express middleware around it that a flow cannot express:
 * rate limits in front of the device endpoints (a limited request gets 429 before any flow runs, so it costs
 * no database write) and the answer for requests no route took (405 with Allow for a known path, else 404).
 */
import type { Translate } from '../common';
import { TokenBuckets } from './rate-limit';

interface Route {
  pattern: RegExp;
  methods: string[];
  /** Device endpoints (rate limited); the others are operator endpoints behind the admin token. */
  device: string[];
}

/*
 * The patterns match a path exactly as Express's router matches the flow's routes (case-insensitive, an optional
 * trailing slash, a segment being anything but '/', still percent-encoded), so no spelling of a path reaches a
 * flow route without the protections keyed on these: `/API/Devices/x/readings` is the readings route here too.
 */

/** The shipped readings route, relative to httpNodeRoot (its body is read raw, see raw-body). */
export const READINGS_ROUTE = /^\/api\/devices\/[^/]+\/readings\/?$/i;

/** Paths relative to httpNodeRoot, as the shipped flow (flows/esp-e2ee.json) serves them. */
export const DEVICE_API: Route[] = [
  { pattern: /^\/api\/devices\/?$/i, methods: ['GET'], device: [] },
  { pattern: /^\/api\/devices\/[^/]+\/?$/i, methods: ['GET', 'POST', 'PUT', 'DELETE'], device: ['GET', 'POST'] },
  { pattern: READINGS_ROUTE, methods: ['GET', 'POST'], device: ['POST'] },
  { pattern: /^\/api\/devices\/[^/]+\/poll\/?$/i, methods: ['POST'], device: ['POST'] },
  { pattern: /^\/api\/devices\/[^/]+\/commands\/?$/i, methods: ['GET', 'POST'], device: [] },
  { pattern: /^\/api\/devices\/[^/]+\/rekey\/?$/i, methods: ['POST'], device: [] },
  { pattern: /^\/api\/devices\/[^/]+\/reset\/?$/i, methods: ['POST'], device: [] },
];

/** Every route's path starts so (in any case): a path that does not is answered without trying the patterns. */
const API_PREFIX = '/api/devices';

/** What a device sent, as the rejection log names it: a reading, a registration, a config poll, or another request. */
export type UplinkKind = 'reading' | 'register' | 'poll' | 'request';

const REGISTER_ROUTE = /^\/api\/devices\/[^/]+\/?$/i;
const POLL_ROUTE = /^\/api\/devices\/[^/]+\/poll\/?$/i;

/**
 * The kind of a rejected device message: from its MQTT topic's last level (msg.uplink: reading, register, poll),
 * else from its HTTP path (the shipped flow's routes).
 */
export function uplinkKind(path: string | undefined, mqttType?: unknown): UplinkKind {
  if (mqttType === 'reading' || mqttType === 'register' || mqttType === 'poll') return mqttType;
  const p = (path ?? '').split('?')[0];
  if (READINGS_ROUTE.test(p)) return 'reading';
  if (POLL_ROUTE.test(p)) return 'poll';
  if (REGISTER_ROUTE.test(p)) return 'register';
  return 'request';
}

/**
 * The route of the API a path belongs to, if any. Every request to httpNode passes the package's middleware, which
 * asks this: a path outside the API costs one comparison.
 */
export function routeOf(path: string): Route | undefined {
  if (path.length < API_PREFIX.length || path.slice(0, API_PREFIX.length).toLowerCase() !== API_PREFIX) return undefined;
  return DEVICE_API.find((r) => r.pattern.test(path));
}

/** The device id in a device API path, or '' (decoded; undecodable text is kept as it is). */
export function pathDeviceId(path: string): string {
  const segment = /^\/api\/devices\/([^/]+)/i.exec(path)?.[1] ?? '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export interface ApiRequest {
  method?: string;
  path: string;
  ip?: string;
  socket?: { remoteAddress?: string };
}
export interface ApiResponse {
  status(code: number): ApiResponse;
  set(field: string, value: string): ApiResponse;
  json(body: unknown): void;
}
type Next = (err?: unknown) => void;

/** The request's source address (Express's req.ip, which honours its "trust proxy" setting). */
export function sourceOf(req: ApiRequest): string {
  return req.ip ?? req.socket?.remoteAddress ?? '';
}

/**
 * The rate limit in front of every API route (device and operator): per source address, charged before anything is
 * authenticated. A device's own budget is charged only once its message has proved it (deviceRateCheck, in the
 * replay guard), so garbage sent for a device from a source under its limit costs that device nothing. An excess
 * gets 429 with Retry-After (seconds) and `onLimited` is told (for the aggregated rejection log).
 */
export function sourceRateLimit(bySource: TokenBuckets | undefined, t: Translate, onLimited?: (source: string, deviceid: string, path: string) => void, now: () => number = Date.now) {
  return (req: ApiRequest, res: ApiResponse, next: Next): void => {
    if (!bySource || !routeOf(req.path)) return next();
    const source = sourceOf(req);
    const wait = bySource.take(source, now());
    if (wait === 0) return next();
    onLimited?.(source, pathDeviceId(req.path), req.path);
    res.status(429).set('Retry-After', retryAfterSeconds(wait)).json({ status: 'NOK', message: t('e2ee.api.rate-limited') });
  };
}

/** Retry-After for a wait in milliseconds: whole seconds, at least 1. */
export function retryAfterSeconds(waitMs: number): string {
  return String(Math.max(1, Math.ceil(waitMs / 1000)));
}

/**
 * A device's own rate limit, for a message that proved its device: the wait in milliseconds when it is over
 * (0: within it). Without device limits, always 0.
 */
export function deviceRateCheck(byDevice: TokenBuckets | undefined, deviceid: string, now: number = Date.now()): number {
  return byDevice ? byDevice.take(deviceid, now) : 0;
}

/**
 * Keeps the operator's bearer token out of every message: on the API's routes the Authorization header stays
 * readable (`req.headers.authorization`, for the token check) but is made non-enumerable, so a debug node, a log
 * or JSON of `msg.req` does not show it, and its copy in `req.rawHeaders` is replaced.
 */
export function hideAuthorization() {
  return (req: ApiRequest & { headers?: Record<string, unknown>; rawHeaders?: string[] }, _res: unknown, next: Next): void => {
    const value = req.headers?.authorization;
    if (value !== undefined && routeOf(req.path)) {
      Object.defineProperty(req.headers, 'authorization', { value, enumerable: false, configurable: true, writable: true });
      const raw = req.rawHeaders ?? [];
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].toLowerCase() === 'authorization') raw[i + 1] = '[hidden]';
    }
    next();
  };
}

/**
 * Answers on the API's routes that no flow should give: a HEAD is answered 405 (with Allow) before any flow runs,
 * so it is never a config poll that delivers commands while sending nothing; and no answer is JSONP (Express's
 * res.jsonp, which Node-RED's http response node uses, honours `?callback=`): it is plain JSON.
 */
export function apiAnswers(t: Translate) {
  return (req: ApiRequest, res: ApiResponse & { jsonp?: (body: unknown) => void }, next: Next): void => {
    const route = routeOf(req.path);
    if (!route) return next();
    if (req.method === 'HEAD') {
      res.status(405).set('Allow', route.methods.join(', ')).json({ status: 'NOK', message: t('e2ee.api.method-not-allowed', { method: 'HEAD' }) });
      return;
    }
    res.jsonp = (body: unknown) => res.json(body);
    next();
  };
}

/** The last handler under /api: 405 with Allow when the path is the API's and the method is not, else 404. */
export function deviceApiFallback(t: Translate) {
  return (req: ApiRequest & { originalUrl?: string; baseUrl?: string }, res: ApiResponse): void => {
    // Mounted under /api, so req.path has lost it.
    const route = routeOf(`${req.baseUrl ?? ''}${req.path}`);
    if (route && !route.methods.includes(req.method ?? '')) {
      res.status(405).set('Allow', route.methods.join(', ')).json({ status: 'NOK', message: t('e2ee.api.method-not-allowed', { method: String(req.method).slice(0, 16) }) });
      return;
    }
    res.status(404).json({ status: 'NOK', message: t('e2ee.api.not-found') });
  };
}

/**
 * A translator over one of the package's catalogs (the `e2ee` namespace of a built node catalog), for code that
 * runs outside a node (npm start's fallback).
 */
export function catalogTranslator(catalog: Record<string, unknown>): Translate {
  return (key, params) => {
    let value: unknown = catalog;
    for (const part of key.split('.')) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
    if (typeof value !== 'string') return key;
    return value.replace(/__(\w+)__/g, (m, name: string) => (params && name in params ? String(params[name]) : m));
  };
}
