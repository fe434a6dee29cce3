import { PushPolicy, STORAGE_RETRY_AFTER_S, uplinkKind, TokenBuckets, apiAnswers, canonicalAddress, pushPolicy, RateLimits, RejectionLog, deviceApiJsonBodies, hideAuthorization, inputFunnel, rawReadingsBody, retryAfterSeconds, runAction, sourceOf, sourceRateLimit } from '../lib';
import { packageLimits } from '../shared/limits';
import type { Msg, Node, NodeDef, RED } from '../shared/red';
import type { Transport } from '../lib';
import { resolveStore } from '../shared/stores';
import { deviceAuthOf } from '../shared/keys';
import { deviceIdFrom } from '../shared/config';

/** msg.e2ee as aes-decrypt sets it: the request came sealed (its payload is the plaintext). */
function sealedOf(msg: Msg): { authenticated: boolean; keyver?: number } | undefined {
  const e2ee = msg.e2ee as { authenticated?: unknown; keyver?: unknown } | undefined;
  if (!e2ee || typeof e2ee !== 'object') return undefined;
  return { authenticated: e2ee.authenticated === true, ...(typeof e2ee.keyver === 'number' ? { keyver: e2ee.keyver } : {}) };
}

/** Where a sealed uplink came from (Express's req.ip, which honours "trust proxy"), for the push target. */
function sealedSource(msg: Msg): string | undefined {
  const req = msg.req as Parameters<typeof sourceOf>[0] | undefined;
  if (!msg.e2ee || !req) return undefined;
  const source = canonicalAddress(sourceOf(req));
  return source || undefined;
}

/** The transport of a sealed uplink: mqtt when the flow's MQTT edge said so (msg.transport), http when it has a request. */
function transportOf(msg: Msg): Transport | undefined {
  if (!msg.e2ee) return undefined;
  if (msg.transport === 'mqtt') return 'mqtt';
  return msg.req ? 'http' : undefined;
}

/** Why a reading was rejected, for the log only: the replay guard's reason, a caught error, or the log action's answer. */
function rejectionReason(msg: Msg): string {
  const rejected = msg.rejected as { reason?: unknown } | undefined;
  const error = msg.error as { message?: unknown } | undefined;
  const payload = msg.payload as { message?: unknown } | undefined;
  const reason = rejected?.reason ?? error?.message ?? payload?.message ?? 'unknown';
  return String(reason).slice(0, 80);
}

/** The package's settings in settings.js: `e2ee: { rateLimit, rejectionLogInterval, pushAllow }`. */
interface E2eeSettings {
  /** Read by packageLimits (nodes/shared/limits). */
  rateLimit?: string | RateLimits;
  /** CIDRs commands may be pushed to (default: the private ranges), or `any`. */
  pushAllow?: string;
  /** Seconds between rejection summaries (default 60). */
  rejectionLogInterval?: number;
  /** The most devices a registration may create (default DEFAULT_MAX_DEVICES). */
  maxDevices?: number;
}

/** At most this many devices by default (settings e2ee.maxDevices); what bounds registration in plain mode. */
const DEFAULT_MAX_DEVICES = 10_000;

type Translate = (key: string, params?: Record<string, unknown>) => string;
type ActionResponse = Awaited<ReturnType<typeof runAction>>;

/** The package's settings, parsed once when it loads; a bad one is logged and falls back to the safe default. */
function packageSettings(RED: RED): { bySource: TokenBuckets | undefined; push: PushPolicy | undefined; interval: number } {
  const settings = (RED.settings.e2ee ?? {}) as E2eeSettings;
  const limits = packageLimits(RED);
  if (limits.error) RED.log.error(limits.error);
  let push: PushPolicy | undefined;
  try {
    push = pushPolicy(settings.pushAllow);
  } catch (err) {
    // A typo must not open the push to everything: no push at all, and the poll delivers.
    RED.log.error((err as Error).message);
  }
  const interval = Number(settings.rejectionLogInterval) > 0 ? Number(settings.rejectionLogInterval) * 1000 : 60_000;
  return { bySource: limits.source, push, interval };
}

/** The HTTP protections, installed on Node-RED's httpNode once, when the package loads. */
function installHttpProtections(RED: RED, bySource: TokenBuckets | undefined, t: Translate, rejections: RejectionLog): void {
  // The operator's token never shows in a message (see hideAuthorization).
  RED.httpNode?.use(hideAuthorization());
  // No HEAD reaches a flow (it would be a poll that sends nothing), and no answer is JSONP.
  RED.httpNode?.use(apiAnswers(t));
  // A source over its rate gets 429 before any flow runs (a device's own rate is charged once its MAC verified).
  RED.httpNode?.use(sourceRateLimit(bySource, t, (source, deviceid, path) => rejections.record(source, deviceid, 'rate-limited', uplinkKind(path))));
  // The shipped readings route needs its body raw (see lib/http/body): installed once, when the package loads.
  RED.httpNode?.use(rawReadingsBody(t));
  // The other device API routes: a malformed JSON body gets 400 and an oversized one 413, not Node-RED's 500.
  RED.httpNode?.use(deviceApiJsonBodies(t));
}

/**
 * The `reject` action: one answer for every rejected reading, so the route is no padding, MAC or replay oracle; the
 * reason goes to the log only, summarised per source. A guard that could not decide (storage) is a 503 instead.
 */
function answerRejection(msg: Msg, t: Translate, rejections: RejectionLog): Msg {
  const rejected = msg.rejected as { reason?: unknown; retryAfterMs?: unknown } | undefined;
  const req = msg.req as Parameters<typeof sourceOf>[0] | undefined;
  // Over MQTT the broker hides the sender's address: its rejections are counted as one source.
  const source = req ? sourceOf(req) : msg.transport === 'mqtt' ? 'MQTT' : '';
  // What it was (a reading, a registration, a config poll): from its MQTT topic, else its route.
  const kind = uplinkKind((req as { path?: string } | undefined)?.path, msg.uplink);
  if (rejected?.reason === 'rate-limited') {
    // The device proved itself and is over its own rate: it may know so (it holds the key), and when to retry.
    rejections.record(source, String(deviceIdFrom(msg) ?? ''), 'rate-limited', kind);
    msg.statusCode = 429;
    msg.payload = { status: 'NOK', message: t('e2ee.api.rate-limited') };
    msg.headers = { 'Retry-After': retryAfterSeconds(Number(rejected.retryAfterMs) || 1000) };
    return msg;
  }
  if (rejected?.reason === 'storage-unavailable') {
    // Not a rejection: the guard could not decide. The device store has logged the cause once.
    msg.statusCode = 503;
    msg.payload = { status: 'NOK', message: t('e2ee.registry.storage-unavailable') };
    msg.headers = { 'Retry-After': String(STORAGE_RETRY_AFTER_S) };
    return msg;
  }
  rejections.record(source, String(deviceIdFrom(msg) ?? ''), rejectionReason(msg), kind);
  msg.statusCode = 400;
  msg.payload = { status: 'NOK', message: t('e2ee.registry.rejected') };
  delete msg.headers;
  return msg;
}

/** The action's answer onto the message, for an http response node (or aes-encrypt and a push, for commands). */
function applyResponse(msg: Msg, res: ActionResponse): Msg {
  msg.payload = res.payload;
  msg.statusCode = res.statusCode;
  if (res.total !== undefined) msg.total = res.total;
  if (res.headers) msg.headers = { ...(msg.headers as Record<string, string> | undefined), ...res.headers };
  if (res.seqn !== undefined) msg.seqn = res.seqn;
  if (res.pushUrl !== undefined) msg.pushUrl = res.pushUrl;
  else delete msg.pushUrl;
  if (res.publish) msg.publish = true;
  else delete msg.publish;
  if (res.keyVersion !== undefined) msg.keyVersion = res.keyVersion;
  if (res.answer) msg.answer = res.answer;
  else delete msg.answer;
  return msg;
}

/** Logs a refused push target once per device and address (the set is bounded). */
function refusedPushLogger(t: Translate, push: PushPolicy | undefined) {
  const logged = new Set<string>();
  return (node: Node, deviceid: string, refused: NonNullable<ActionResponse['pushRefused']>) => {
    const key = `${deviceid} ${refused.address}`;
    if (logged.has(key)) return;
    if (logged.size >= 10_000) logged.clear();
    logged.add(key);
    node.warn(t(`e2ee.registry.push-${refused.verdict}`, { deviceid: deviceid.slice(0, 64), address: refused.address, allowed: push?.allowed ?? '' }));
  };
}

export = function register(RED: RED) {
  const t: Translate = (key, params) => RED._(key, params);
  const { bySource, push, interval } = packageSettings(RED);
  const logRefusedPush = refusedPushLogger(t, push);
  // One log for the whole package: rejected readings and rate-limited requests, summarised per source.
  const rejections = new RejectionLog((line) => RED.log.warn(line), t, interval);
  installHttpProtections(RED, bySource, t, rejections);

  function DeviceRegistry(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const configured = typeof def.action === 'string' && def.action ? def.action : 'get';
    const requireToken = def.requireToken === true || def.requireToken === 'true';
    // (Read here, not when the module loads, so a changed setting applies at the next deploy.)
    const configuredMax = Number(((RED.settings.e2ee ?? {}) as E2eeSettings).maxDevices);
    const maxDevices = Number.isSafeInteger(configuredMax) && configuredMax > 0 ? configuredMax : DEFAULT_MAX_DEVICES;

    this.on('input', inputFunnel<Msg>(this, t, async (msg) => {
      const action = typeof msg.action === 'string' && msg.action ? msg.action : configured;
      if (action === 'reject') return answerRejection(msg, t, rejections);
      const req = msg.req as { headers?: Record<string, unknown> } | undefined;
      const storeNode = resolveStore(RED, def.store);
      const auth = requireToken ? { header: req?.headers?.authorization, token: storeNode.credentials?.token } : undefined;
      // The key the devices use says whether they authenticate (and so must register and poll sealed, and
      // acknowledge commands) and whether they can be rekeyed. Without one, the seed's plain protocol.
      const deviceAuth = deviceAuthOf(RED, def.key);
      if (def.key && !deviceAuth) throw new Error(t('e2ee.registry.no-device-key'));
      const res = await runAction(
        storeNode.store,
        { action, deviceid: deviceIdFrom(msg), body: msg.payload, heartbeatMs: storeNode.heartbeat * 1000, seqn: msg.seqn, auth, push, maxDevices, deviceAuth, sealed: sealedOf(msg), source: sealedSource(msg), transport: transportOf(msg), events: storeNode.events },
        t,
      );
      if (res.audit) this.warn(res.audit);
      if (res.pushRefused) logRefusedPush(this, String(deviceIdFrom(msg)), res.pushRefused);
      return applyResponse(msg, res);
    }));
    this.on('close', (_removed, done) => {
      // Pending summaries are written now rather than lost with the process.
      rejections.flush();
      done();
    });
  }
  RED.nodes.registerType('device-registry', DeviceRegistry);
};
