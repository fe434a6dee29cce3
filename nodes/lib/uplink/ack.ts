import { ValidationError } from '../registry';

/** The acknowledgement an uplink carries: the highest downlink SEQN the device accepted (0: none yet). */
export function ackOf(body: Record<string, unknown>): number | undefined {
  if (body.ack === undefined) return undefined;
  const n = body.ack;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ValidationError('bad-ack', 'ack');
  return n;
}
