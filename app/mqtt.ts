/**
 * The MQTT side of `npm start` (E2EE_MQTT): an embedded broker in this process (aedes, the default), the user's own
 * broker, or none. The embedded broker takes only the backend's credential and each device's own (user name = device
 * id, password derived from the master key), with the ACL of nodes/lib/wire/topics.ts. It holds QoS 1 messages for
 * a persistent session in memory, so a command queued while a device sleeps reaches it when it connects again (the
 * backend offers every unacknowledged command in each answer anyway, so nothing rests on the broker alone).
 */
import * as net from 'node:net';
import { BACKEND_BROKER_USER, backendBrokerPassword, brokerPassword, brokerUser, deviceOfBrokerUser, mayPublish, maySubscribe, samePassword } from '../nodes/lib';

export interface MqttSettings {
  mode: 'embedded' | 'external' | 'off';
  host: string;
  port: number;
  /** external: the broker's user name and password for the backend (from the URL). */
  user?: string;
  password?: string;
  prefix: string;
}

export interface EmbeddedBroker {
  /** The port it listens on (the one asked for, or the one the OS gave for 0). */
  port: number;
  close(): Promise<void>;
}

interface AedesClient {
  id: string;
  user?: string;
}
interface AedesPacket {
  topic: string;
  retain?: boolean;
}
interface AedesInstance {
  authenticate: (client: AedesClient, username: string | undefined, password: Buffer | undefined, cb: (err: Error | null, ok: boolean) => void) => void;
  authorizePublish: (client: AedesClient | null, packet: AedesPacket, cb: (err: Error | null) => void) => void;
  authorizeSubscribe: (client: AedesClient, sub: { topic: string; qos: number }, cb: (err: Error | null, sub: { topic: string; qos: number } | null) => void) => void;
  handle: (socket: net.Socket) => void;
  close: (cb: () => void) => void;
}

/** ESM packages (aedes 1.x) from this CommonJS build: a real dynamic import, not TypeScript's require(). */
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<Record<string, unknown>>;

/** Starts the embedded broker on host:port with the package's credentials and ACL. */
export async function startEmbeddedBroker(master: Buffer, settings: MqttSettings): Promise<EmbeddedBroker> {
  const { Aedes } = (await importEsm('aedes')) as { Aedes: { createBroker(options: Record<string, unknown>): Promise<AedesInstance> } };
  const broker = await Aedes.createBroker({ drainTimeout: 30_000, maxTopicLevels: 16 });
  const backendPassword = backendBrokerPassword(master);
  broker.authenticate = (client, username, password, cb) => {
    const given = password ? password.toString('utf8') : '';
    let ok = false;
    // A device's user name is its id (a colon written %3A); client.user is the id itself, which the ACL compares.
    const id = typeof username === 'string' ? deviceOfBrokerUser(username) : '';
    if (username === BACKEND_BROKER_USER) ok = samePassword(given, backendPassword);
    else if (/^[A-Za-z0-9:._-]{1,64}$/.test(id) && username === brokerUser(id)) ok = samePassword(given, brokerPassword(master, id));
    if (ok) client.user = username === BACKEND_BROKER_USER ? username : id;
    const err = ok ? null : Object.assign(new Error('not authorised'), { returnCode: 5 });
    cb(err, ok);
  };
  broker.authorizePublish = (client, packet, cb) => {
    // A will published after its client left (client null) was authorised when it was set.
    if (client && !(client.user && mayPublish(settings.prefix, client.user, packet.topic))) return cb(new Error('not authorised'));
    // Nothing is retained: a sealed message is for its moment only.
    packet.retain = false;
    cb(null);
  };
  broker.authorizeSubscribe = (client, sub, cb) => {
    // Refused quietly (SUBACK 128): the client stays connected but gets nothing.
    cb(null, client.user && maySubscribe(settings.prefix, client.user, sub.topic) ? sub : null);
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => broker.close(() => resolve()));
        // Connected clients would keep server.close waiting.
        for (const s of sockets) s.destroy();
      }),
  };
}
