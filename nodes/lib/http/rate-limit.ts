/**
 * Token buckets for the device endpoints: one bucket per key (a device id, a source address), refilled at `rate`
 * tokens a second up to `burst`. Memory is bounded: buckets that have refilled completely carry no information
 * and are dropped by `sweep`, and beyond `maxKeys` the oldest are dropped first.
 */

export interface RateSpec {
  /** Requests a second, sustained. */
  rate: number;
  /** Requests allowed at once after an idle spell. */
  burst: number;
}

export interface RateLimits {
  /** Per device id in the path; null: no limit. */
  device: RateSpec | null;
  /** Per source address; null: no limit. */
  source: RateSpec | null;
}

/**
 * The defaults: a device reports every few seconds at most, so 5/s with bursts of 20 leaves room for a boot
 * (register, poll, a backlog of readings); a site behind one NAT address may hold many devices, hence 200/s.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = {
  device: { rate: 5, burst: 20 },
  source: { rate: 200, burst: 400 },
};

const SPEC = /^(\d+(?:\.\d+)?)\/s(?:\s+burst\s+(\d+))?$/;

function parseSpec(text: string): RateSpec | null | undefined {
  const t = text.trim().toLowerCase();
  if (t === 'off') return null;
  const m = SPEC.exec(t);
  if (!m) return undefined;
  const rate = Number(m[1]);
  const burst = m[2] !== undefined ? Number(m[2]) : Math.max(1, Math.ceil(rate * 4));
  return rate > 0 && burst >= 1 ? { rate, burst } : undefined;
}

/**
 * Parses `E2EE_RATE_LIMIT`: `off`, or comma-separated `device=<n>/s [burst <m>]` and `source=<n>/s [burst <m>]`
 * (each also `off`); what is not named keeps its default. Throws on anything else, naming the part.
 */
export function parseRateLimits(text: string | undefined, defaults: RateLimits = DEFAULT_RATE_LIMITS): RateLimits {
  if (text === undefined || text.trim() === '') return defaults;
  if (text.trim().toLowerCase() === 'off') return { device: null, source: null };
  const limits: RateLimits = { ...defaults };
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim().toLowerCase();
    const spec = eq > 0 ? parseSpec(part.slice(eq + 1)) : undefined;
    if ((name !== 'device' && name !== 'source') || spec === undefined) throw new Error(`bad rate limit "${part.trim()}": use device=<n>/s [burst <m>], source=<n>/s [burst <m>], or off`);
    limits[name] = spec;
  }
  return limits;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly spec: RateSpec, private readonly maxKeys = 100_000) {}

  /** Takes one token for `key`: 0 when allowed, else the milliseconds until one is available. */
  take(key: string, now: number): number {
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(this.spec.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.spec.rate);
      bucket.at = now;
    } else {
      if (this.buckets.size >= this.maxKeys) this.sweep(now);
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
      bucket = { tokens: this.spec.burst, at: now };
      this.buckets.set(key, bucket);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / this.spec.rate) * 1000);
  }

  /** Drops the buckets that are full again (they would behave as new ones). */
  sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.spec.rate >= this.spec.burst) this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}
