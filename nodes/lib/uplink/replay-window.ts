/**
 * Anti-replay window for per-device sequence numbers, after IPsec (RFC 4303
 * §3.4.3, RFC 6479). Pure state transitions, no I/O.
 *
 * `top` is the highest sequence number accepted so far (-1: none yet). With
 * window 0 only numbers above `top` pass. With window W > 0, bit i of
 * `seen` records whether `top - i` was accepted, for i in [0, W); a late
 * number inside the window passes exactly once, one below it is stale.
 */
export type ReplayReason = 'replay' | 'stale' | 'missing-seq' | 'bad-seq' | 'missing-device' | 'key-version';
/** Why the guard could not decide: its storage is unavailable (the message may be sent again later). */
export type GuardUnavailable = 'storage-unavailable';

export interface ReplayState {
  /** Highest accepted number, or -1 before the first. */
  top: number;
  /** Bitmap of accepted numbers below and including top; bit 0 is top. */
  seen: bigint;
  /** The window width the bitmap was kept for. */
  width: number;
}

export type ReplayDecision = { accepted: true; next: ReplayState } | { accepted: false; reason: 'replay' | 'stale' };

export const INITIAL_STATE: ReplayState = Object.freeze({ top: -1, seen: 0n, width: 0 });

const mask = (width: number) => (1n << BigInt(width)) - 1n;

/**
 * Adapts a stored state to the configured window. Bits the stored window did
 * not track are treated as already seen: changing the setting can make the
 * guard stricter for a moment, never looser.
 */
function fitWindow(state: ReplayState, window: number): ReplayState {
  if (state.width === window) return state;
  if (state.top < 0) return { top: -1, seen: 0n, width: window };
  let seen = state.seen & mask(Math.min(state.width, window) || 1);
  if (window > state.width) seen |= mask(window) & ~mask(state.width || 1);
  return { top: state.top, seen: seen | 1n, width: window };
}

/** Decides on `seq` against `state` with a window of `window` (0 = strictly increasing). */
export function decide(state: ReplayState, seq: number, window: number): ReplayDecision {
  const current = fitWindow(state, window);
  if (seq > current.top) {
    if (window === 0) return { accepted: true, next: { top: seq, seen: 1n, width: 0 } };
    const shift = seq - current.top;
    const seen = current.top < 0 || shift >= window ? 1n : ((current.seen << BigInt(shift)) | 1n) & mask(window);
    return { accepted: true, next: { top: seq, seen, width: window } };
  }
  const age = current.top - seq;
  if (window === 0) return { accepted: false, reason: age === 0 ? 'replay' : 'stale' };
  if (age >= window) return { accepted: false, reason: 'stale' };
  const bit = 1n << BigInt(age);
  if (current.seen & bit) return { accepted: false, reason: 'replay' };
  return { accepted: true, next: { top: current.top, seen: current.seen | bit, width: window } };
}

/**
 * Reads a sequence number: a non-negative safe integer, or a string of
 * digits that is one. Anything else is `bad-seq`; absent is `missing-seq`.
 */
export function parseSeq(value: unknown): { ok: true; seq: number } | { ok: false; reason: 'missing-seq' | 'bad-seq' } {
  if (value === undefined || value === null || value === '') return { ok: false, reason: 'missing-seq' };
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^[0-9]{1,16}$/.test(value)) n = Number(value);
  else return { ok: false, reason: 'bad-seq' };
  return Number.isSafeInteger(n) && n >= 0 ? { ok: true, seq: n } : { ok: false, reason: 'bad-seq' };
}
