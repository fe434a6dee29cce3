/**
 * The package's rate limits (settings.js `e2ee.rateLimit`), one set of buckets per process for each setting: the
 * source buckets are charged by the HTTP edge before anything is authenticated (device-registry installs it), the
 * device buckets by the replay guard once a message has proved its device (its MAC verified), so that nobody can
 * spend a device's budget without its key.
 */
import { DEFAULT_RATE_LIMITS, RateLimits, TokenBuckets, parseRateLimits } from '../lib';
import type { RED } from './red';

export interface PackageLimits {
  limits: RateLimits;
  source?: TokenBuckets;
  device?: TokenBuckets;
  /** Why the setting was not taken (the defaults apply); logged by device-registry. */
  error?: string;
}

const bySetting = new Map<string, PackageLimits>();

export function packageLimits(RED: RED): PackageLimits {
  const setting = ((RED.settings.e2ee ?? {}) as { rateLimit?: string | RateLimits }).rateLimit;
  const key = typeof setting === 'string' || setting === undefined ? `s:${setting ?? ''}` : `o:${JSON.stringify(setting)}`;
  let found = bySetting.get(key);
  if (!found) {
    let limits = DEFAULT_RATE_LIMITS;
    let error: string | undefined;
    try {
      limits = typeof setting === 'object' && setting !== null ? setting : parseRateLimits(setting);
    } catch (err) {
      error = (err as Error).message;
    }
    found = { limits, error, source: limits.source ? new TokenBuckets(limits.source) : undefined, device: limits.device ? new TokenBuckets(limits.device) : undefined };
    bySetting.set(key, found);
  }
  return found;
}
