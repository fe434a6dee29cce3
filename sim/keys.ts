#!/usr/bin/env node
/**
 * esp-e2ee-keys: the secrets.h of one device under a per-device master key.
 *
 *   npx esp-e2ee-keys 5C:CF:7F:AA:00:01 --out firmware/include/secrets.h      (the URL npm start's banner shows)
 *   npx esp-e2ee-keys --generate --url http://192.168.1.10:1880 --out firmware/include/secrets.h
 *
 * The master key comes from --key, E2EE_KEY (hex) or <data dir>/aes-key.hex (--data, E2EE_DATA_DIR, else ./data),
 * as `npm start` keeps it. The master never leaves this machine: the file holds the device's own key only.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { backendKey } from './backend-key';
import * as path from 'node:path';
import {
  BACKEND_BROKER_USER,
  ValidationError,
  backendBrokerPassword,
  brokerPassword,
  brokerUser,
  checkPrefix,
  deriveDeviceKey,
  generateDeviceId,
  mosquittoAcl,
  mosquittoPasswordLine,
  parseKeyBytes,
  renderSecretsH,
  validateDeviceId,
} from '../nodes/lib';

const HELP = `Usage: esp-e2ee-keys <device id> [options]
       esp-e2ee-keys --generate [options]
Prints the firmware's include/secrets.h for one device: its id, its own key (derived from the master key, which
stays here), the backend URL and placeholders for the WiFi settings.
  --generate         make up a device id (esp-<12 hex digits>) instead of naming one
  --url URL          the backend as the device reaches it (default: the device URL npm start printed for the data
                     dir, from <data dir>/device-url; said on stderr, with a warning when no device can reach it)
  --version N        key version (default 0)
  --auth MODE        hmac-sha256 (default) or none, as the backend's E2EE_AUTH; with none the file holds the
                     backend's shared key itself (E2EE_AUTH=none has no per-device keys)
  --key HEX          the master key in hex (default: $E2EE_KEY, else <data dir>/aes-key.hex)
  --data DIR         the backend's data dir (default: $E2EE_DATA_DIR, else ./data)
  --out FILE         write the file (mode 0600; written whole or not at all) instead of printing it
  --mqtt HOST:PORT   the device talks MQTT through this broker (its broker login is derived from the master)
  --mqtt-prefix P    the topic prefix (default esp-e2ee)
  --mosquitto DIR    instead: write DIR/passwd and DIR/acl for Mosquitto (password_file, acl_file): the backend's
                     login and one per device named (several ids may be given)
A device id is 1 to 64 characters from A-Z a-z 0-9 : . _ - (a MAC address fits).`;

/** What secrets.h says for a device on MQTT without --url (it never uses it). */
const MQTT_PLACEHOLDER_URL = 'http://192.168.1.10:1880';

/** The device URL npm start printed in its banner for this data dir (it writes <data dir>/device-url), if any. */
function bannerUrl(dataDir: string): string | undefined {
  try {
    return fs.readFileSync(path.join(dataDir, 'device-url'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** A URL no ESP8266 can reach: this machine's loopback. */
function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return host === 'localhost' || host === '::1' || /^127\./.test(host);
  } catch {
    return false;
  }
}

/** Writes the file whole or not at all: a temporary file beside it, renamed over it (never an empty secrets.h). */
function writeWhole(file: string, text: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, text, { mode: 0o600 });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function args() {
  return parseArgs({
    allowPositionals: true,
    options: {
      generate: { type: 'boolean', default: false },
      url: { type: 'string' },
      version: { type: 'string', default: '0' },
      auth: { type: 'string', default: 'hmac-sha256' },
      key: { type: 'string' },
      data: { type: 'string', default: process.env.E2EE_DATA_DIR || undefined },
      out: { type: 'string' },
      mqtt: { type: 'string' },
      'mqtt-prefix': { type: 'string', default: 'esp-e2ee' },
      mosquitto: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
}

function main(): number {
  let parsed: ReturnType<typeof args>;
  try {
    parsed = args();
  } catch (err) {
    console.error(`esp-e2ee-keys: ${(err as Error).message} (see --help)`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.mosquitto !== undefined) return mosquitto(values, positionals);
  const deviceId = values.generate ? generateDeviceId(crypto.randomBytes) : positionals[0];
  if (!deviceId || positionals.length > (values.generate ? 0 : 1)) {
    console.error(values.generate ? 'esp-e2ee-keys: --generate takes no device id' : 'esp-e2ee-keys: name one device id, or --generate (see --help)');
    return 2;
  }
  if (values.auth !== 'hmac-sha256' && values.auth !== 'none') {
    console.error('esp-e2ee-keys: --auth must be hmac-sha256 or none');
    return 2;
  }
  const version = Number(values.version);
  if (!/^\d{1,10}$/.test(values.version) || version > 0xffffffff) {
    console.error('esp-e2ee-keys: --version must be an integer from 0 to 4294967295');
    return 2;
  }
  const dataDir = values.data ?? 'data';
  const fromBanner = values.url === undefined && values.mqtt === undefined ? bannerUrl(dataDir) : undefined;
  const url = values.url ?? fromBanner ?? MQTT_PLACEHOLDER_URL;
  if (!/^https?:\/\/[^/\s]+/.test(url)) {
    console.error('esp-e2ee-keys: --url must be http://host:port (the backend as the device reaches it)');
    return 2;
  }
  let master: Buffer;
  try {
    master = parseKeyBytes('hex', backendKey(values, 'master key', dataDir));
  } catch (err) {
    // (Never the key itself in the message.)
    console.error(`esp-e2ee-keys: ${err instanceof Error && err.message.startsWith('no master') ? err.message : 'the master key must be 32, 48 or 64 hex digits'}`);
    return 2;
  }
  // Plain mode (npm start with E2EE_AUTH=none) decrypts every device with its E2EE_KEY as it is: a derived key would
  // be refused at every message. So the file holds that shared key, and nothing per device is possible.
  if (values.auth === 'none' && version !== 0) {
    console.error('esp-e2ee-keys: --auth none has one shared key and no key versions (rekeys need hmac-sha256): drop --version');
    return 2;
  }
  let mqtt: { host: string; port: number; user: string; password: string; prefix: string } | undefined;
  if (values.mqtt !== undefined) {
    const m = /^([^\s:/]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(values.mqtt);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535 || values.auth !== 'hmac-sha256') {
      console.error('esp-e2ee-keys: --mqtt must be host:port (the broker as the device reaches it), with --auth hmac-sha256');
      return 2;
    }
    try {
      mqtt = { host: m[1], port: Number(m[2]), user: brokerUser(validateDeviceId(deviceId)), password: brokerPassword(master, deviceId), prefix: checkPrefix(values['mqtt-prefix']) };
    } catch {
      console.error('esp-e2ee-keys: a bad device id or --mqtt-prefix (topic levels without + or #)');
      return 2;
    }
  }
  let text: string;
  try {
    const deviceKey = values.auth === 'none' ? master : deriveDeviceKey(master, validateDeviceId(deviceId), version);
    text = renderSecretsH({ deviceKey, deviceId, version, backendUrl: url, hmac: values.auth === 'hmac-sha256', mqtt });
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    console.error('esp-e2ee-keys: a device id is 1 to 64 characters from A-Z a-z 0-9 : . _ -');
    return 2;
  }
  if (values.url === undefined && values.mqtt === undefined && fromBanner === undefined) {
    console.error(`esp-e2ee-keys: no --url, and no backend has printed its device URL in ${dataDir} (npm start writes ${path.join(dataDir, 'device-url')}): start it first (HOST=0.0.0.0 npm start), or give --url http://<address the device reaches>:<port>`);
    return 2;
  }
  // Without --url the file gets the URL npm start printed, and says so; a loopback one is useless to a device.
  if (fromBanner !== undefined) {
    console.error(`esp-e2ee-keys: no --url: secrets.h says ${fromBanner}, the device URL npm start printed for ${dataDir}`);
    if (isLoopbackUrl(fromBanner)) console.error(`esp-e2ee-keys: warning: no ESP8266 can reach ${fromBanner} (this machine's loopback): restart the backend with HOST=0.0.0.0 and run this again, or give --url http://<this machine's LAN address>:<port>`);
  }
  if (values.out) {
    try {
      writeWhole(values.out, text);
    } catch (err) {
      console.error(`esp-e2ee-keys: cannot write ${values.out}: ${(err as NodeJS.ErrnoException).code ?? 'error'} (does its directory exist? run this from the repository's root)`);
      return 2;
    }
    console.error(`esp-e2ee-keys: wrote ${values.out} for device ${deviceId} (key version ${version}); fill in the WiFi settings`);
  } else {
    process.stdout.write(text);
  }
  return 0;
}

/** --mosquitto DIR: Mosquitto's password_file (the backend and each device named) and acl_file, mode 0600. */
function mosquitto(values: ReturnType<typeof args>['values'], ids: string[]): number {
  let master: Buffer;
  let prefix: string;
  try {
    master = parseKeyBytes('hex', backendKey(values, 'master key', values.data ?? 'data'));
    prefix = checkPrefix(values['mqtt-prefix']);
  } catch (err) {
    console.error(`esp-e2ee-keys: ${err instanceof Error && err.message.startsWith('no master') ? err.message : 'the master key must be hex, and --mqtt-prefix topic levels without + or #'}`);
    return 2;
  }
  const lines = [mosquittoPasswordLine(BACKEND_BROKER_USER, backendBrokerPassword(master))];
  for (const id of ids) {
    try {
      if (validateDeviceId(id) === BACKEND_BROKER_USER) throw new ValidationError('bad-deviceid', 'deviceid');
    } catch {
      console.error(`esp-e2ee-keys: ${JSON.stringify(id)} is not a device id (1 to 64 characters from A-Z a-z 0-9 : . _ -, not ${BACKEND_BROKER_USER})`);
      return 2;
    }
    lines.push(mosquittoPasswordLine(brokerUser(id), brokerPassword(master, id)));
  }
  const dir = values.mosquitto as string;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'passwd'), `${lines.join('\n')}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'acl'), mosquittoAcl(prefix, ids.map((id) => ({ id, user: brokerUser(id) }))), { mode: 0o600 });
  console.error(`esp-e2ee-keys: wrote ${path.join(dir, 'passwd')} (the backend and ${ids.length} device(s)) and ${path.join(dir, 'acl')}: in mosquitto.conf, password_file and acl_file`);
  return 0;
}

process.exitCode = main();
