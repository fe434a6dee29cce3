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

/**
 * Cloud metadata services, refused whatever the allow-list says (AWS's IPv6 one falls inside fc00::/7, Alibaba's
 * inside the carrier-grade NAT range 100.64.0.0/10 that the default allows).
 */
const METADATA = ['169.254.169.254', 'fd00:ec2::254', '100.100.100.200'];

/** The 16 bytes of an IPv6 address (with or without an embedded dotted IPv4), or undefined. */
function ipv6Bytes(address: string): number[] | undefined {
  if (isIP(address) !== 6) return undefined;
  let text = address.toLowerCase().split('%')[0];
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number);
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (part: string | undefined) => (part ? part.split(':').filter((g) => g !== '') : []);
  const left = groups(head);
  const right = groups(tail);
  const zeros = tail === undefined ? 0 : 8 - left.length - right.length;
  const all = [...left, ...Array(zeros).fill('0'), ...right].map((g) => parseInt(g, 16));
  if (all.length !== 8 || all.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

function ipv4Of(bytes: number[], from: number, xor = 0): string {
  return bytes.slice(from, from + 4).map((b) => (b ^ xor) & 0xff).join('.');
}

/**
 * The address a push would really reach, as the policy must judge it: an IPv4 address for every IPv6 form that
 * carries one — IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), NAT64
 * (64:ff9b::/96), 6to4 (2002::/16) and Teredo (2001::/32, the client's address) — else the address itself.
 * `undefined` for an NAT64 local-use prefix (64:ff9b:1::/48), whose embedding varies: it is refused.
 */
export function canonicalAddress(address: string): string | undefined {
  const bytes = ipv6Bytes(address);
  if (!bytes) return address;
  const zero = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0);
  const word = (i: number) => (bytes[i] << 8) | bytes[i + 1];
  if (zero(0, 10) && word(10) === 0xffff) return ipv4Of(bytes, 12); // IPv4-mapped
  if (zero(0, 8) && word(8) === 0xffff && word(10) === 0) return ipv4Of(bytes, 12); // IPv4-translated
  if (zero(0, 12) && !zero(12, 15)) return ipv4Of(bytes, 12); // IPv4-compatible (not :: or ::1)
  if (word(0) === 0x64 && word(2) === 0xff9b && zero(4, 12)) return ipv4Of(bytes, 12); // NAT64 well-known prefix
  if (word(0) === 0x64 && word(2) === 0xff9b && word(4) === 1) return undefined; // NAT64 local use
  if (word(0) === 0x2002) return ipv4Of(bytes, 2); // 6to4
  if (word(0) === 0x2001 && word(2) === 0) return ipv4Of(bytes, 12, 0xff); // Teredo: the client, obfuscated
  return address;
}

/** Builds a policy from a CIDR list (`E2EE_PUSH_ALLOW`), `any`, or the default; throws naming a bad entry. */
export function pushPolicy(allow: string | undefined = DEFAULT_PUSH_ALLOW): PushPolicy {
  const text = allow.trim() === '' ? DEFAULT_PUSH_ALLOW : allow.trim();
  const refused = new BlockList();
  for (const [net, prefix, type] of ALWAYS_REFUSED) refused.addSubnet(net, prefix, type);
  for (const a of METADATA) refused.addAddress(a, isIP(a) === 6 ? 'ipv6' : 'ipv4');
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
      const a = canonicalAddress(address);
      const family = a === undefined ? 0 : isIP(a);
      if (a === undefined || !family) return 'refused';
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
