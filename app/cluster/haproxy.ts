/** HAProxy in front of the instances: its configuration, its binary, and whether it sees every instance healthy. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

export interface HaproxyLayout {
  host: string;
  port: number;
  statsPort: number;
  instances: { index: number; port: number }[];
}

/** HAProxy's configuration: round robin over the instances, each checked with GET /healthz every second. */
export function haproxyConfig({ host, port, statsPort, instances }: HaproxyLayout): string {
  return [
    'global',
    '  maxconn 4096',
    '',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout http-request 10s',
    // A request that could not reach an instance (connection refused) goes to another; one that reached it is
    // never sent twice (the instance may have acted on it).
    '  retries 2',
    '  option redispatch',
    '  option forwardfor',
    '',
    'frontend devices',
    `  bind ${host}:${port}`,
    '  default_backend nodered',
    '',
    'backend nodered',
    '  balance roundrobin',
    '  option httpchk GET /healthz',
    '  http-check expect status 200',
    '  default-server inter 1s fall 2 rise 2',
    ...instances.map((inst) => `  server n${inst.index} 127.0.0.1:${inst.port} check`),
    '',
    'frontend stats',
    `  bind 127.0.0.1:${statsPort}`,
    '  stats enable',
    '  stats uri /stats',
    '  stats refresh 5s',
    '',
  ].join('\n');
}

/** Debian's haproxy (in sbin, which a user's PATH may lack), or undefined. */
export function haproxyBinary(): string | undefined {
  const known = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((p) => fs.existsSync(p));
  if (known) return known;
  try {
    return execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Waits (up to 20 s) until HAProxy's stats show `count` instances UP. */
export async function waitHealthy(statsPort: number, count: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const csv = await fetch(`http://127.0.0.1:${statsPort}/stats;csv`).then((r) => r.text(), () => '');
    const healthy = csv.split('\n').filter((l) => l.startsWith('nodered,n') && l.split(',')[17] === 'UP').length;
    if (healthy === count) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}
