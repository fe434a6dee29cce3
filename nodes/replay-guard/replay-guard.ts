import { GuardUnavailable, ReplayPersist, ReplayReason, StorageUnavailableError, admitUplink, deviceRateCheck, inputFunnel, parseSeq } from '../lib';
import { packageLimits } from '../shared/limits';
import type { Msg, Node, NodeDef, RED } from '../shared/red';
import { resolveStore } from '../shared/stores';

export = function register(RED: RED) {
  function ReplayGuard(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const deviceProperty = typeof def.deviceProperty === 'string' && def.deviceProperty ? def.deviceProperty : 'deviceid';
    const seqProperty = typeof def.seqProperty === 'string' && def.seqProperty ? def.seqProperty : 'payload.SEQN';
    const windowSize = Math.min(Math.max(Math.trunc(Number(def.window) || 0), 0), 1024);
    // An empty or unknown setting means the default, which is safe in any flow.
    const persist: ReplayPersist = def.persist === 'with-next-write' ? 'with-next-write' : 'before-send';
    // The device's own rate limit (settings e2ee.rateLimit), charged only for a message that proved its device.
    const byDevice = def.rateLimit === true || def.rateLimit === 'true' ? packageLimits(RED).device : undefined;

    const read = (msg: Msg, property: string): unknown => {
      try {
        return RED.util.getMessageProperty(msg, property);
      } catch {
        return undefined;
      }
    };
    const reject = (msg: Msg, reason: ReplayReason | GuardUnavailable | 'rate-limited', extra: Record<string, unknown> = {}) => {
      msg.rejected = { reason, ...extra };
      return [null, msg];
    };
    /** The wait (ms) when the message's device is over its rate; only for a message aes-decrypt opened (msg.e2ee). */
    const overRate = (msg: Msg, deviceid: string): number => {
      const e2ee = msg.e2ee as { authenticated?: unknown } | undefined;
      if (!byDevice || !e2ee || typeof e2ee !== 'object') return 0;
      return deviceRateCheck(byDevice, deviceid);
    };

    this.on('input', inputFunnel<Msg>(this, (key, params) => RED._(key, params), async (msg) => {
      const { store, events } = resolveStore(RED, def.store);
      const deviceid = read(msg, deviceProperty);
      if (typeof deviceid !== 'string' || deviceid === '') return reject(msg, 'missing-device');
      const seq = parseSeq(read(msg, seqProperty));
      if (!seq.ok) return reject(msg, seq.reason);
      const wait = overRate(msg, deviceid);
      if (wait > 0) return reject(msg, 'rate-limited', { retryAfterMs: wait });
      let result;
      try {
        // msg.e2ee.keyver: the per-device key version aes-decrypt verified the message under; keywrap: the key a
        // rekey's key exchange made for it (kept when this message completes the rekey).
        const { keyver, keywrap } = (msg.e2ee ?? {}) as { keyver?: unknown; keywrap?: unknown };
        result = await admitUplink(store, deviceid, seq.seq, windowSize, persist, typeof keyver === 'number' ? keyver : undefined, typeof keywrap === 'string' ? keywrap : undefined);
      } catch (err) {
        // Undecided, not refused: the second output says so, and the shipped flow answers 503 (retry later).
        if (err instanceof StorageUnavailableError) return reject(msg, 'storage-unavailable');
        throw err;
      }
      if (!result.accepted) return reject(msg, result.reason);
      // The first message under a rekey's new key version completed it.
      if (result.promoted !== undefined) events?.rekeyed(deviceid, result.promoted);
      return [msg, null];
    }));
  }
  RED.nodes.registerType('replay-guard', ReplayGuard);
};
