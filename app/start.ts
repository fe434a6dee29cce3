/**
 * `npm start`: the whole backend on an embedded default. A real Node-RED runtime (the node-red devDependency) in this
 * process with the package's nodes and flows/esp-e2ee.json, storing everything under E2EE_DATA_DIR (default ./data):
 * the SQLite database, the Node-RED user directory, and the generated key and admin token (mode 0600). Two
 * listeners: the device and operator endpoints on HOST:PORT, and the editor with its admin API on
 * E2EE_ADMIN_HOST:E2EE_ADMIN_PORT (loopback by default). The variables are in app/settings.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { banner } from './banner';
import { DataDirInUse, lockDataDir } from './lock';
import { deviceUrl } from './listeners';
import { bindListeners, loadNodeRed, nodeRedSettings, startRuntime, stopOnSignals } from './node-red';
import { loadSecrets } from './secrets';
import { flowEnvironment, readSettings } from './settings';
import type { Settings } from './settings';
import { EmbeddedBroker, startEmbeddedBroker } from './mqtt';
import { PACKAGE_NAME, adoptDurability, flowMismatch, keyScope, linkPackage, switchMqtt, writeInitialFlow } from './userdir';

export { reachableAddresses } from './listeners';

/** The repository (or installed package) root: app/ compiles to dist/app/. */
export const ROOT = path.resolve(__dirname, '..', '..');

export interface StartOptions {
  /** Merged into Node-RED's settings (benchmarks). */
  settings?: Record<string, unknown>;
  /** Node packages (names resolvable from the root) linked into the user directory beside this one. */
  packages?: string[];
}

/** Node-RED packages linked into the user directory when they are installed beside this one. */
const OPTIONAL_PACKAGES = ['@flowfuse/node-red-dashboard'];

function installedPackage(name: string): string | undefined {
  try {
    return path.dirname(require.resolve(`${name}/package.json`, { paths: [ROOT] }));
  } catch {
    return undefined;
  }
}

/** Stops the process with one line for the user (a setting, a secret or a data directory that cannot work). */
function refuse(message: string): never {
  console.error(message);
  process.exit(2);
}

export async function main(options: StartOptions = {}): Promise<void> {
  // Express shows stack traces in its error pages unless told it is in production.
  process.env.NODE_ENV = process.env.NODE_ENV || 'production';
  let settings;
  try {
    settings = readSettings(process.env, ROOT);
    fs.mkdirSync(settings.userDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    refuse(err instanceof Error ? err.message : String(err));
  }
  // A second backend on the same data directory stops here, before it touches anything of the first one's.
  await lockDataDir(settings.dataDir).catch((err: unknown) => (err instanceof DataDirInUse ? refuse(err.message) : Promise.reject(err)));
  let secrets;
  try {
    secrets = loadSecrets(process.env, settings.dataDir);
  } catch (err) {
    refuse(err instanceof Error ? err.message : String(err));
  }
  // The flow's credentials refer to these variables; Node-RED substitutes them when it creates the nodes.
  Object.assign(process.env, flowEnvironment(settings, { key: secrets.key.value, token: secrets.token.value }));
  linkPackage(settings.userDir, PACKAGE_NAME, ROOT);
  for (const name of options.packages ?? []) linkPackage(settings.userDir, name, path.dirname(require.resolve(`${name}/package.json`, { paths: [ROOT] })));
  // The dashboard the examples draw on, when installed beside this package (a clone's npm install brings it).
  for (const name of OPTIONAL_PACKAGES) {
    const dir = installedPackage(name);
    if (dir) linkPackage(settings.userDir, name, dir);
  }
  writeInitialFlow(ROOT, settings, secrets.credentialSecret.value);
  const mismatch = flowMismatch(settings);
  if (mismatch) refuse(mismatch);
  switchMqtt(settings);
  adoptDurability(settings);
  // The embedded broker is up before the flow's MQTT client connects to it.
  const broker = await startBroker(settings, secrets.key.value);

  const runtime = loadNodeRed(ROOT, settings);
  const redSettings = nodeRedSettings(ROOT, settings, { token: secrets.token.value, credentialSecret: secrets.credentialSecret.value }, options.settings);
  const listeners = await bindListeners(runtime, settings, redSettings);
  redSettings.e2ee.deviceUrl = deviceUrl(listeners.server, settings.host);
  // esp-e2ee-keys without --url puts this URL into a device's secrets.h (and warns when it is loopback).
  fs.writeFileSync(path.join(settings.dataDir, 'device-url'), `${redSettings.e2ee.deviceUrl}\n`);
  await startRuntime(ROOT, runtime, listeners, redSettings);
  console.log(banner({ root: ROOT, settings, secrets, listeners, scope: keyScope(settings), showSecrets: process.stdout.isTTY === true, broker }));
  stopOnSignals(runtime, listeners, broker);
}

/** The embedded MQTT broker when E2EE_MQTT says so (a port in use stops the start with one line). */
async function startBroker(settings: Settings, keyHex: string): Promise<EmbeddedBroker | undefined> {
  if (settings.mqtt.mode !== 'embedded') return undefined;
  if (!/^[0-9a-fA-F]{32,64}$/.test(keyHex)) refuse('E2EE_MQTT=embedded needs a hex master key (E2EE_KEY): the broker credentials derive from it. Set E2EE_MQTT=off.');
  try {
    return await startEmbeddedBroker(Buffer.from(keyHex, 'hex'), settings.mqtt);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      refuse(`The embedded MQTT broker cannot listen on ${settings.mqtt.host}:${settings.mqtt.port} (${String(code)}): set E2EE_MQTT_PORT, E2EE_MQTT=mqtt://... for your own broker, or E2EE_MQTT=off.`);
    }
    throw err;
  }
}

/** The launcher's entry: main, with an unexpected failure printed and exit code 1. */
export function run(options?: StartOptions): void {
  main(options).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
