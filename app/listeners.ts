/** The two HTTP listeners (devices and operators; the editor), bound before anything starts, and their addresses. */
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';

/**
 * Timeouts of both listeners: a client gets 10 s to send its headers and 30 s for the whole request, and an idle
 * keep-alive connection is closed after 5 s, so slow or stalled clients cannot hold sockets open. Node checks
 * them every second (its default is every 30 s).
 */
export const SERVER_TIMEOUTS = { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 };

export function createServer(app: http.RequestListener): http.Server {
  const server = http.createServer(SERVER_TIMEOUTS, app);
  // (Also set as properties: the options object does not take keepAliveTimeout on every Node version.)
  server.headersTimeout = SERVER_TIMEOUTS.headersTimeout;
  server.requestTimeout = SERVER_TIMEOUTS.requestTimeout;
  server.keepAliveTimeout = SERVER_TIMEOUTS.keepAliveTimeout;
  return server;
}

/** Whether the port can be bound on the host now (it is bound and released at once). */
export function portIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** The first port after `port` (at most 20 on) that is free on the host now, if any. */
export async function freePortAfter(port: number, host: string): Promise<number | undefined> {
  for (let p = port + 1; p <= Math.min(port + 20, 65535); p++) if (await portIsFree(p, host)) return p;
  return undefined;
}

/** The one line for a port that cannot be bound, naming the variable to change (and a port checked to be free). */
export function listenHint(code: string | undefined, port: number, host: string, vars: { port: string; host: string }, free?: number): string | undefined {
  const where = `${host}:${port}`;
  const hints: Record<string, string> = {
    EADDRINUSE: free !== undefined
      ? `Port ${port} is already in use (${where}): set ${vars.port} to a free port, e.g. ${vars.port}=${free} npm start (free just now)`
      : `Port ${port} is already in use (${where}), and so are the 20 after it: set ${vars.port} to a free port`,
    EACCES: `Port ${port} needs privileges on this machine (${where}): set ${vars.port} to a port above 1023`,
    EADDRNOTAVAIL: `${vars.host}=${host} is not an address of this machine: set ${vars.host} to one of its addresses, or 0.0.0.0 for all`,
  };
  return code ? hints[code] : undefined;
}

/**
 * Binds a port before anything starts, so a clash is one clear line, not a stack trace after the flows ran.
 * `vars` names the environment variables that set it.
 */
export function listen(server: http.Server, port: number, host: string, vars = { port: 'PORT', host: 'HOST' }): Promise<void> {
  return new Promise((resolve) => {
    const failed = async (err: NodeJS.ErrnoException) => {
      const free = err.code === 'EADDRINUSE' ? await freePortAfter(port, host) : undefined;
      console.error(listenHint(err.code, port, host, vars, free) ?? `Cannot listen on ${host}:${port}: ${err.message}`);
      process.exit(2);
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.removeListener('error', failed);
      resolve();
    });
  });
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** The addresses devices can use when the server listens on every interface (HOST=0.0.0.0 or ::). */
export function reachableAddresses(host: string, interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string[] {
  const all = Object.values(interfaces).flat().filter((a): a is os.NetworkInterfaceInfo => !!a && !a.internal);
  const family = (a: os.NetworkInterfaceInfo) => String(a.family);
  const v4 = all.filter((a) => family(a) === 'IPv4' || family(a) === '4').map((a) => a.address);
  const v6 = all.filter((a) => (family(a) === 'IPv6' || family(a) === '6') && !a.address.startsWith('fe80')).map((a) => `[${a.address}]`);
  return host === '::' ? [...v4, ...v6] : v4;
}

export function portOf(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}

/** The URL a listener is reached at (loopback for a wildcard). */
export function urlOf(server: http.Server, bound: string): string {
  const shown = isWildcard(bound) ? '127.0.0.1' : bound;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${portOf(server)}`;
}

/**
 * Where devices reach this backend (the sidebar's Add device writes it into secrets.h): this address, or with a
 * wildcard host the first network address.
 */
export function deviceUrl(server: http.Server, host: string): string {
  const lan = isWildcard(host) ? reachableAddresses(host)[0] : host;
  return `http://${lan && lan.includes(':') && !lan.startsWith('[') ? `[${lan}]` : lan || '127.0.0.1'}:${portOf(server)}`;
}
