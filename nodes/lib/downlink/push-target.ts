/**
 * Which addresses commands may be pushed to. The address comes from a device's registration, so a push is a
 * request to an address someone else chose: loopback, link-local (cloud metadata services such as
 * 169.254.169.254), multicast, broadcast and unspecified addresses are always refused, and by default only the
 * private ranges are allowed, where devices live. `E2EE_PUSH_ALLOW` (a comma-separated list of CIDRs, or `any`)
 * replaces the default allowed ranges; it never re-opens the always-refused ones. A refused push is not an error:
 * the command waits for the device's config poll.
 */
import { BlockList, isIP } from 'node:net';

/** Never a push target, whatever is allowed. */
const ALWAYS_REFUSED: [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'], // "this network", unspecified
  ['127.0.0.0', 8, 'ipv4'], // loopback
  ['169.254.0.0', 16, 'ipv4'], // link-local, cloud metadata
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, and 255.255.255.255 broadcast
  ['::', 128, 'ipv6'], // unspecified
  ['::1', 128, 'ipv6'], // loopback
  ['fe80::', 10, 'ipv6'], // link-local
  ['ff00::', 8, 'ipv6'], // multicast
];

/** The default allowed ranges: RFC 1918, carrier-grade NAT (RFC 6598) and IPv6 unique local addresses. */
export const DEFAULT_PUSH_ALLOW = '10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7';

export type PushVerdict = 'allowed' | 'refused' | 'not-allowed';

export interface PushPolicy {
  verdict(address: string): PushVerdict;
  /** The allowed ranges as configured, for logs. */
  readonly allowed: string;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), else the address as it is. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/** Builds a policy from a CIDR list (`E2EE_PUSH_ALLOW`), `any`, or the default; throws naming a bad entry. */
export function pushPolicy(allow: string | undefined = DEFAULT_PUSH_ALLOW): PushPolicy {
  const text = allow.trim() === '' ? DEFAULT_PUSH_ALLOW : allow.trim();
  const refused = new BlockList();
  for (const [net, prefix, type] of ALWAYS_REFUSED) refused.addSubnet(net, prefix, type);
  const allowed = new BlockList();
  if (text.toLowerCase() === 'any') {
    allowed.addSubnet('0.0.0.0', 0, 'ipv4');
    allowed.addSubnet('::', 0, 'ipv6');
  } else {
    for (const entry of text.split(',').map((e) => e.trim()).filter(Boolean)) {
      const [net, prefixText] = entry.split('/');
      const family = isIP(net);
      const prefix = prefixText === undefined ? (family === 6 ? 128 : 32) : Number(prefixText);
      if (!family || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) throw new Error(`bad push target range "${entry}": use CIDRs such as 192.168.1.0/24, or any`);
      allowed.addSubnet(net, prefix, family === 6 ? 'ipv6' : 'ipv4');
    }
  }
  return {
    allowed: text,
    verdict(address: string): PushVerdict {
      const a = unmapped(address);
      const family = isIP(a);
      if (!family) return 'refused';
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (refused.check(a, type)) return 'refused';
      return allowed.check(a, type) ? 'allowed' : 'not-allowed';
    },
  };
}

/** Where a command is pushed to: the device's command server at its registered address and port. */
export function pushUrl(target: { ipaddr: string; cmdport: number }): string {
  const host = target.ipaddr.includes(':') ? `[${target.ipaddr}]` : target.ipaddr;
  return `http://${host}:${target.cmdport}/command`;
}
