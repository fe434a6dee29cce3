#!/usr/bin/env node
/**
 * `npm start`: the whole backend on an embedded default.
 *
 * Builds the package when its sources are newer than dist/, then runs a real
 * Node-RED runtime (the node-red devDependency) in this process with the
 * package's nodes and flows/esp-e2ee.json, storing everything under
 * E2EE_DATA_DIR (default ./data): the SQLite database, the Node-RED user
 * directory, and the generated key and admin token (mode 0600).
 *
 * Two listeners: the device and operator endpoints on HOST:PORT, and the
 * editor with its admin API on E2EE_ADMIN_HOST:E2EE_ADMIN_PORT (loopback by
 * default), so the editor's login throttle and its pages never share a port
 * with devices.
 *
 * Environment: PORT (1880), HOST (127.0.0.1; 0.0.0.0 lets devices on your
 * network in), E2EE_ADMIN_HOST (127.0.0.1), E2EE_ADMIN_PORT (1881),
 * E2EE_DATA_DIR, E2EE_KEY (hex AES key), E2EE_ADMIN_TOKEN, E2EE_AUTH
 * (hmac-sha256 | none, for a new data dir), E2EE_EDITOR (on | off),
 * E2EE_RATE_LIMIT, E2EE_REJECTION_LOG_INTERVAL (s), E2EE_RETENTION, E2EE_PUSH_ALLOW, E2EE_LOG_LEVEL,
 * E2EE_DATABASE_URL (a PostgreSQL connection string: the store is that database instead of the SQLite file, and
 * this process is one stateless instance of as many as share it), E2EE_DB_POOL (its pool size), E2EE_TRUST_PROXY
 * (Express's "trust proxy", e.g. loopback behind a local load balancer: rate limits then see the devices' addresses).
 */
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

function buildIfNeeded() {
  const dist = path.join(root, 'dist', 'nodes');
  if (fs.existsSync(dist) && newestMtime(dist) >= newestMtime(path.join(root, 'nodes'))) return;
  console.log('Building the package...');
  execFileSync(process.execPath, [path.join(__dirname, 'build.js')], { stdio: 'inherit' });
}

/** A secret from the environment, else from its file in the data dir, else generated into that file (0600). */
function secret(envName, file, generate) {
  if (process.env[envName]) return { value: process.env[envName].trim(), source: `the ${envName} environment variable`, generated: false };
  if (fs.existsSync(file)) return { value: fs.readFileSync(file, 'utf8').trim(), source: file, generated: false };
  const value = generate();
  fs.writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return { value, source: file, generated: true };
}

/** Node-RED's encrypted credentials format: {"$": hex(iv) + base64(AES-256-CTR(sha256(secret), iv, json))}. */
function encryptCredentials(credentials, credentialSecret) {
  const key = crypto.createHash('sha256').update(credentialSecret).digest();
  const iv = crypto.randomBytes(16);
  const cipher = crypto.createCipheriv('aes-256-ctr', key, iv);
  return { $: iv.toString('hex') + cipher.update(JSON.stringify(credentials), 'utf8', 'base64') + cipher.final('base64') };
}

function linkPackage(userDir, name = 'node-red-contrib-esp-e2ee', dir = root) {
  const target = path.join(userDir, 'node_modules', name);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  try {
    if (fs.realpathSync(target) === dir) return;
    fs.rmSync(target, { recursive: true, force: true });
  } catch {
    // not there yet
  }
  fs.symlinkSync(dir, target, 'dir');
}

/**
 * Timeouts of both listeners: a client gets 10 s to send its headers and 30 s for the whole request, and an idle
 * keep-alive connection is closed after 5 s, so slow or stalled clients cannot hold sockets open. Node checks
 * them every second (its default is every 30 s).
 */
const SERVER_TIMEOUTS = { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 };

function createServer(app) {
  const server = http.createServer(SERVER_TIMEOUTS, app);
  // (Also set as properties: the options object does not take keepAliveTimeout on every Node version.)
  server.headersTimeout = SERVER_TIMEOUTS.headersTimeout;
  server.requestTimeout = SERVER_TIMEOUTS.requestTimeout;
  server.keepAliveTimeout = SERVER_TIMEOUTS.keepAliveTimeout;
  return server;
}

/**
 * Binds a port before anything starts, so a clash is one clear line, not a stack trace after the flows ran.
 * `vars` names the environment variables that set it.
 */
function listen(server, port, host, vars = { port: 'PORT', host: 'HOST' }) {
  return new Promise((resolve) => {
    const failed = (err) => {
      const where = `${host}:${port}`;
      const hints = {
        EADDRINUSE: `Port ${port} is already in use (${where}): set ${vars.port} to a free port, e.g. ${vars.port}=${port + 10} npm start`,
        EACCES: `Port ${port} needs privileges on this machine (${where}): set ${vars.port} to a port above 1023`,
        EADDRNOTAVAIL: `${vars.host}=${host} is not an address of this machine: set ${vars.host} to one of its addresses, or 0.0.0.0 for all`,
      };
      console.error(hints[err.code] || `Cannot listen on ${where}: ${err.message}`);
      process.exit(2);
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.removeListener('error', failed);
      resolve();
    });
  });
}

/** The addresses devices can use when the server listens on every interface (HOST=0.0.0.0 or ::). */
function reachableAddresses(host, interfaces = os.networkInterfaces()) {
  const all = Object.values(interfaces).flat().filter((a) => a && !a.internal);
  const v4 = all.filter((a) => a.family === 'IPv4' || a.family === 4).map((a) => a.address);
  const v6 = all.filter((a) => (a.family === 'IPv6' || a.family === 6) && !a.address.startsWith('fe80')).map((a) => `[${a.address}]`);
  return host === '::' ? [...v4, ...v6] : v4;
}

/**
 * @param {object} [options] for benchmarks (bench/lib/server.js): `settings` merged into Node-RED's settings,
 *   `packages` node packages (names resolvable from here) linked into the user directory beside this one.
 */
async function main(options = {}) {
  // Express shows stack traces in its error pages unless told it is in production.
  process.env.NODE_ENV = process.env.NODE_ENV || 'production';
  buildIfNeeded();
  const port = Number(process.env.PORT || 1880);
  const host = process.env.HOST || '127.0.0.1';
  const adminPort = Number(process.env.E2EE_ADMIN_PORT || 1881);
  const adminHost = process.env.E2EE_ADMIN_HOST || '127.0.0.1';
  const dataDir = path.resolve(process.env.E2EE_DATA_DIR || path.join(root, 'data'));
  const userDir = path.join(dataDir, 'node-red');
  fs.mkdirSync(userDir, { recursive: true, mode: 0o700 });

  const key = secret('E2EE_KEY', path.join(dataDir, 'aes-key.hex'), () => crypto.randomBytes(16).toString('hex'));
  if (!/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(key.value)) {
    console.error(`The AES key from ${key.source} must be 32, 48 or 64 hex digits.`);
    process.exit(2);
  }
  const token = secret('E2EE_ADMIN_TOKEN', path.join(dataDir, 'admin-token'), () => crypto.randomBytes(24).toString('base64url'));
  const credentialSecret = secret('E2EE_CREDENTIAL_SECRET', path.join(dataDir, 'credential-secret'), () => crypto.randomBytes(32).toString('hex'));
  // The flow's credentials refer to these variables; Node-RED substitutes them when it creates the nodes.
  process.env.E2EE_KEY = key.value;
  process.env.E2EE_ADMIN_TOKEN = token.value;
  // The flow's device-store keeps readings for ${E2EE_RETENTION}: 90 days unless set ('' keeps everything).
  process.env.E2EE_RETENTION = process.env.E2EE_RETENTION ?? '90d';
  // Commands nobody acknowledged expire after ${E2EE_COMMAND_TTL} (the store's default, 7 days, when unset).
  process.env.E2EE_COMMAND_TTL = process.env.E2EE_COMMAND_TTL ?? '';
  // The flow's device-store: PostgreSQL when a connection string is given (its credential is ${E2EE_DATABASE_URL}).
  const databaseUrl = (process.env.E2EE_DATABASE_URL || '').trim();
  process.env.E2EE_DATABASE_URL = databaseUrl;
  process.env.E2EE_STORE_BACKEND = databaseUrl ? 'postgresql' : 'sqlite';
  process.env.E2EE_DB_POOL = process.env.E2EE_DB_POOL ?? '';

  linkPackage(userDir);
  for (const name of options.packages ?? []) {
    linkPackage(userDir, name, path.dirname(require.resolve(`${name}/package.json`, { paths: [root] })));
  }
  const flowFile = path.join(userDir, 'flows.json');
  const credFile = path.join(userDir, 'flows_cred.json');
  const auth = process.env.E2EE_AUTH || 'hmac-sha256';
  if (!fs.existsSync(flowFile)) {
    const flow = JSON.parse(fs.readFileSync(path.join(root, 'flows', 'esp-e2ee.json'), 'utf8'));
    // hmac-sha256: a master key and a key per device; none: the seed's one shared key (crypto-js / blog firmware).
    for (const n of flow) {
      if (n.type !== 'aes-key') continue;
      n.auth = auth;
      n.scope = auth === 'none' ? 'shared' : 'per-device';
    }
    fs.writeFileSync(flowFile, JSON.stringify(flow, null, 2));
    const keyNode = flow.find((n) => n.type === 'aes-key');
    const storeNode = flow.find((n) => n.type === 'device-store');
    const creds = { [keyNode.id]: { key: '${E2EE_KEY}' }, [storeNode.id]: { token: '${E2EE_ADMIN_TOKEN}', database: '${E2EE_DATABASE_URL}' } };
    fs.writeFileSync(credFile, JSON.stringify(encryptCredentials(creds, credentialSecret.value)), { mode: 0o600 });
  }

  if (databaseUrl && (JSON.parse(fs.readFileSync(flowFile, 'utf8')).find((n) => n.type === 'device-store') || {}).backend !== '${E2EE_STORE_BACKEND}') {
    console.error(`E2EE_DATABASE_URL is set, but the flow in ${userDir} predates PostgreSQL support and would keep using SQLite: use a new E2EE_DATA_DIR.`);
    process.exit(2);
  }

  // E2EE_NODE_RED: another Node-RED install to run on (the tests use it for Node-RED 5).
  const nodeRedDir = process.env.E2EE_NODE_RED ? path.resolve(process.env.E2EE_NODE_RED) : path.dirname(require.resolve('node-red/package.json', { paths: [root] }));
  const express = require(require.resolve('express', { paths: [nodeRedDir] }));
  const RED = require(nodeRedDir);
  // The same constant-time comparison the operator endpoints use.
  const { secretsEqual, deviceApiFallback, catalogTranslator, describeConnection } = require(path.join(root, 'dist', 'nodes', 'lib'));
  const editor = (process.env.E2EE_EDITOR || 'on') !== 'off';

  const settings = {
    userDir,
    flowFile: 'flows.json',
    credentialSecret: credentialSecret.value,
    uiHost: adminHost,
    uiPort: adminPort,
    // The editor has a listener of its own (see below): device traffic never passes through the admin app.
    httpAdminRoot: editor ? '/' : false,
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
      // The login dialog says what the password is (scripts/editor/login-hint.js shows it on the credentials login).
      // (No path in it: the login page is shown to anyone who can reach the editor.)
      login: { message: 'User "admin"; the password is the admin token: the one npm start printed when it made it, kept in the file admin-token of its data directory, or E2EE_ADMIN_TOKEN.' },
      page: { scripts: [path.join(__dirname, 'editor', 'login-hint.js')] },
    },
    // The package's own settings (see the device-registry help): rate limits of the device endpoints.
    e2ee: { rateLimit: process.env.E2EE_RATE_LIMIT, rejectionLogInterval: Number(process.env.E2EE_REJECTION_LOG_INTERVAL) || undefined, pushAllow: process.env.E2EE_PUSH_ALLOW, maxDevices: Number(process.env.E2EE_MAX_DEVICES) || undefined },
    logging: { console: { level: process.env.E2EE_LOG_LEVEL || 'info', metrics: false, audit: false } },
    // The editor sits behind a login: user "admin", password = the admin token (compared in constant time).
    adminAuth: {
      type: 'credentials',
      users: (username) => Promise.resolve(username === 'admin' ? { username: 'admin', permissions: '*' } : null),
      authenticate: (username, password) =>
        Promise.resolve(username === 'admin' && secretsEqual(String(password), token.value) ? { username: 'admin', permissions: '*' } : null),
    },
    ...options.settings,
  };

  const app = express();
  // Behind a load balancer: req.ip (the rate limits, the rejection log) is the client's address from X-Forwarded-For,
  // believed only from the addresses this names (Express's "trust proxy": loopback, a subnet, a hop count).
  if (process.env.E2EE_TRUST_PROXY) app.set('trust proxy', /^\d+$/.test(process.env.E2EE_TRUST_PROXY) ? Number(process.env.E2EE_TRUST_PROXY) : process.env.E2EE_TRUST_PROXY);
  const server = createServer(app);
  await listen(server, port, host);
  // Where devices reach this backend (the sidebar's Add device writes it into secrets.h): this address, or with a
  // wildcard HOST the first network address.
  const lan = host === '0.0.0.0' || host === '::' ? reachableAddresses(host)[0] : host;
  settings.e2ee.deviceUrl = `http://${lan && lan.includes(':') && !lan.startsWith('[') ? `[${lan}]` : lan || '127.0.0.1'}:${server.address().port}`;
  // The editor and its admin API: their own listener (loopback by default). Node-RED's editor comms attach to the
  // server given to init, and its login throttle then limits the editor only, never a device or an operator.
  let adminServer;
  if (editor) {
    const adminApp = express();
    adminServer = createServer(adminApp);
    await listen(adminServer, adminPort, adminHost, { port: 'E2EE_ADMIN_PORT', host: 'E2EE_ADMIN_HOST' });
    RED.init(adminServer, settings);
    adminApp.use(settings.httpAdminRoot, RED.httpAdmin);
  } else {
    RED.init(server, settings);
  }
  app.use(settings.httpNodeRoot, RED.httpNode);
  // Device and operator routes that no flow route answered: 405 with Allow for a known path, else a JSON 404
  // (not Express's HTML page).
  const catalog = JSON.parse(fs.readFileSync(path.join(root, 'dist', 'nodes', 'device-registry', 'locales', 'en-US', 'device-registry.json'), 'utf8'));
  app.use('/api', deviceApiFallback(catalogTranslator(catalog)));
  // Whatever reaches here failed outside the flows: answer without details.
  app.use((err, req, res, next) => {
    void next;
    res.status(err.status && err.status < 500 ? err.status : 500).json({ status: 'NOK', message: err.status && err.status < 500 ? 'Bad request' : 'Internal error' });
  });
  // start() resolves before the flows run; "ready" means the endpoints answer.
  const flowsStarted = new Promise((resolve) => RED.events.once('flows:started', resolve));
  await RED.start();
  await flowsStarted;

  const urlOf = (listening, bound) => {
    const shown = bound === '0.0.0.0' || bound === '::' ? '127.0.0.1' : bound;
    return `http://${shown.includes(':') ? `[${shown}]` : shown}:${listening.address().port}`;
  };
  const wildcard = host === '0.0.0.0' || host === '::';
  const base = urlOf(server, host);
  // The flow's key: a master with a key per device, or one key for all (an older data dir, or E2EE_AUTH=none).
  const scope = (JSON.parse(fs.readFileSync(flowFile, 'utf8')).find((n) => n.type === 'aes-key') || {}).scope === 'per-device' ? 'per-device' : 'shared';

  const editorUrl = adminServer ? urlOf(adminServer, adminHost) : undefined;
  const dataArg = dataDir === path.join(root, 'data') ? '' : ` --data ${JSON.stringify(dataDir)}`;
  const lines = [
    '',
    '=== node-red-contrib-esp-e2ee backend ===',
    ...(auth === 'none'
      ? [`Device API:    ${base}/api/devices/<mac>            POST register {ipaddr, ssid} | GET config poll (plain)`,
        `               ${base}/api/devices/<mac>/readings   POST {iv, data} (AES, auth none)`]
      : [`Device API:    ${base}/api/devices/<id>             POST register (sealed: {iv, data, mac, kv})`,
        `               ${base}/api/devices/<id>/poll        POST config poll (sealed; the answer is sealed)`,
        `               ${base}/api/devices/<id>/readings    POST reading (sealed, auth ${auth})`]),
    `Operator API:  ${base}/api/devices  (Authorization: Bearer <admin token>)  GET list | PUT/DELETE /<mac> |`,
    '               GET /<mac>/readings | POST /<mac>/commands | POST /<mac>/reset | POST /<mac>/rekey',
    editor ? `Editor:        ${editorUrl}/  (user "admin", password: the admin token; E2EE_ADMIN_HOST/E2EE_ADMIN_PORT)` : 'Editor:        off (E2EE_EDITOR=off)',
    databaseUrl
      ? `Database:      ${describeConnection(databaseUrl)} (PostgreSQL from E2EE_DATABASE_URL, shared by every instance)`
      : `Database:      ${path.join(userDir, 'esp-e2ee.sqlite')}`,
    `Health check:  ${base}/healthz`,
    `AES key:       from ${key.source} (${scope === 'per-device' ? 'master key: a key per device, esp-e2ee-keys' : 'shared by every device'})`,
    `Admin token:   from ${token.source}`,
  ];
  // Generated secrets are shown on a terminal only: under systemd or docker, stdout goes to a log that keeps
  // them long after their file is gone or changed. Elsewhere the banner says which file holds them.
  const showSecrets = process.stdout.isTTY === true;
  const notShown = 'It is not printed here, because the output is not a terminal (a service log would keep it): read it from that file.';
  if (key.generated) {
    lines.push('', `A new AES-128 key was generated and stored in ${key.source} (mode 0600).`,
      ...(scope === 'per-device'
        ? ['It is the master key and stays here (it is not printed). Each device gets its own key, derived from it:',
          `    npx esp-e2ee-keys <device id> --url ${wildcard ? `http://<this machine's address>:${server.address().port}` : base}${dataArg} > firmware/include/secrets.h`]
        : [`Put it in the firmware's include/secrets.h as E2EE_KEY_HEX (auth mode ${auth}, one key for every device).`,
          ...(showSecrets ? [`    ${key.value}`, 'It is shown only this once.'] : [notShown])]));
  }
  if (token.generated) {
    lines.push('', `A new admin token was generated and stored in ${token.source} (mode 0600).`,
      ...(showSecrets ? [`    ${token.value}`, 'It is shown only this once.'] : [notShown]));
  }
  if (host === '127.0.0.1' || host === 'localhost') lines.push('', 'Listening on loopback only: set HOST=0.0.0.0 to let devices on your network reach it.');
  if (wildcard) {
    const addresses = reachableAddresses(host);
    lines.push('', addresses.length
      ? `Devices on your network: use one of ${addresses.map((a) => `http://${a}:${server.address().port}`).join(', ')} as E2EE_BACKEND_URL.`
      : 'Listening on every interface, but this machine has no network address yet.');
  }
  lines.push('', `Simulated devices: npm run sim -- --url ${base}${dataArg} --devices 10 --interval 1`);
  lines.push(`esp-e2ee backend ready on ${base}`, '');
  console.log(lines.join('\n'));

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping (pending writes commit first)`);
    await RED.stop();
    server.close();
    adminServer?.close();
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

module.exports = { main, reachableAddresses };
