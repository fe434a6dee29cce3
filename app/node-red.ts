/**
 * The Node-RED runtime of the backend: its settings, and the runtime started on the two listeners (the editor on
 * its own, so its login throttle can never lock out a device), with JSON answers for what no flow route answered.
 */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { catalogTranslator, deviceApiFallback, secretsEqual } from '../nodes/lib';
import { createServer, listen } from './listeners';
import type { Settings } from './settings';

/* The runtime and Express come from the Node-RED install the backend runs on, untyped. */
type Express = any;
type NodeRed = any;

export interface Runtime {
  RED: NodeRed;
  express: (() => Express) & Record<string, unknown>;
}

/** The Node-RED install: the devDependency, or E2EE_NODE_RED (the tests run Node-RED 5 so). */
export function loadNodeRed(root: string, settings: Settings): Runtime {
  const dir = settings.nodeRedDir ?? path.dirname(require.resolve('node-red/package.json', { paths: [root] }));
  return { express: require(require.resolve('express', { paths: [dir] })), RED: require(dir) };
}

const LOGIN_MESSAGE = 'User "admin"; the password is the admin token: the one npm start printed when it made it, kept in the file admin-token of its data directory, or E2EE_ADMIN_TOKEN.';

/** Node-RED's settings for the backend; `extra` (benchmarks) is merged over them. */
export function nodeRedSettings(root: string, settings: Settings, secrets: { token: string; credentialSecret: string }, extra: Record<string, unknown> = {}): Record<string, any> {
  const admin = { username: 'admin', permissions: '*' };
  return {
    userDir: settings.userDir,
    flowFile: 'flows.json',
    credentialSecret: secrets.credentialSecret,
    uiHost: settings.adminHost,
    uiPort: settings.adminPort,
    // The editor has a listener of its own: device traffic never passes through the admin app.
    httpAdminRoot: settings.editor ? '/' : false,
    httpNodeRoot: '/',
    apiMaxLength: '1mb',
    functionExternalModules: false,
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    editorTheme: {
      projects: { enabled: false },
      tours: false,
      // No palette catalogue: the editor would fetch it from the internet.
      palette: { catalogues: [] },
      // The login dialog says what the password is (app/editor/login-hint.js shows it on the credentials login).
      // (No path in it: the login page is shown to anyone who can reach the editor.)
      login: { message: LOGIN_MESSAGE },
      page: { scripts: [path.join(root, 'app', 'editor', 'login-hint.js')] },
    },
    // The package's own settings (see the device-registry help).
    e2ee: { rateLimit: settings.rateLimit, rejectionLogInterval: settings.rejectionLogInterval, pushAllow: settings.pushAllow, maxDevices: settings.maxDevices },
    logging: { console: { level: settings.logLevel, metrics: false, audit: false } },
    // The editor sits behind a login: user "admin", password = the admin token (compared in constant time).
    adminAuth: {
      type: 'credentials',
      users: (username: string) => Promise.resolve(username === 'admin' ? admin : null),
      authenticate: (username: string, password: unknown) => Promise.resolve(username === 'admin' && secretsEqual(String(password), secrets.token) ? admin : null),
    },
    ...extra,
  };
}

export interface Listeners {
  server: http.Server;
  adminServer?: http.Server;
  app: Express;
}

/** Binds both listeners (a clash stops here with one line) and hands them to the runtime. */
export async function bindListeners(runtime: Runtime, settings: Settings, redSettings: Record<string, any>): Promise<Listeners> {
  const app = runtime.express();
  // Behind a load balancer: req.ip (the rate limits, the rejection log) is the client's address from X-Forwarded-For,
  // believed only from the addresses this names.
  if (settings.trustProxy !== undefined) app.set('trust proxy', settings.trustProxy);
  const server = createServer(app);
  await listen(server, settings.port, settings.host);
  if (!settings.editor) {
    runtime.RED.init(server, redSettings);
    return { server, app };
  }
  // Node-RED's editor comms attach to the server given to init, and its login throttle then limits the editor only.
  const adminApp = runtime.express();
  const adminServer = createServer(adminApp);
  await listen(adminServer, settings.adminPort, settings.adminHost, { port: 'E2EE_ADMIN_PORT', host: 'E2EE_ADMIN_HOST' });
  runtime.RED.init(adminServer, redSettings);
  adminApp.use(redSettings.httpAdminRoot, runtime.RED.httpAdmin);
  handOverSocketIo(app, server, adminServer);
  return { server, adminServer, app };
}

/** A socket.io endpoint (`…/socket.io/`, with its query): FlowFuse Dashboard's, below its page's path. */
const SOCKET_IO = /\/socket\.io\/?(\?|$)/;

/**
 * FlowFuse Dashboard binds its socket.io to Node-RED's server, which is the editor's listener here, while its pages
 * are served with the flows' routes on the device port: the page's socket.io requests and upgrades that reach the
 * device port are handed to the server socket.io listens on. Nothing else is: the editor's own websocket (/comms)
 * stays on the editor's port.
 */
function handOverSocketIo(app: ReturnType<Runtime['express']>, server: http.Server, adminServer: http.Server): void {
  app.use((req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => {
    if (req.url?.includes('/socket.io') && SOCKET_IO.test(req.url)) adminServer.emit('request', req, res);
    else next();
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: import('node:net').Socket, head: Buffer) => {
    if (SOCKET_IO.test(req.url ?? '')) adminServer.emit('upgrade', req, socket, head);
    else socket.destroy();
  });
}

/** Mounts the flows' routes and the JSON fallbacks, starts the runtime and resolves once the flows run. */
export async function startRuntime(root: string, runtime: Runtime, { app }: Listeners, redSettings: Record<string, any>): Promise<void> {
  const { RED } = runtime;
  app.use(redSettings.httpNodeRoot, RED.httpNode);
  // Device and operator routes that no flow route answered: 405 with Allow for a known path, else a JSON 404.
  const catalog = JSON.parse(fs.readFileSync(path.join(root, 'dist', 'nodes', 'device-registry', 'locales', 'en-US', 'device-registry.json'), 'utf8'));
  app.use('/api', deviceApiFallback(catalogTranslator(catalog)));
  // Whatever reaches here failed outside the flows: answer without details.
  app.use((err: { status?: number }, _req: unknown, res: any, next: unknown) => {
    void next;
    const client = err.status !== undefined && err.status < 500;
    res.status(client ? err.status : 500).json({ status: 'NOK', message: client ? 'Bad request' : 'Internal error' });
  });
  // start() resolves before the flows run; "ready" means the endpoints answer.
  const flowsStarted = new Promise((resolve) => RED.events.once('flows:started', resolve));
  await RED.start();
  await flowsStarted;
}

/** SIGINT and SIGTERM stop the runtime (pending writes commit first), then the listeners. */
export function stopOnSignals(runtime: Runtime, { server, adminServer }: Listeners, broker?: { close(): Promise<void> }): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping (pending writes commit first)`);
    await runtime.RED.stop();
    server.close();
    adminServer?.close();
    await broker?.close();
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
