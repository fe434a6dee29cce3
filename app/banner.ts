/** What `npm start` prints once it is ready: the endpoints, the editor, the database, where the secrets are. */
import * as path from 'node:path';
import { describeConnection } from '../nodes/lib';
import { isWildcard, portOf, reachableAddresses, urlOf } from './listeners';
import type { Listeners } from './node-red';
import type { Secrets } from './secrets';
import type { Settings } from './settings';

export interface BannerInput {
  root: string;
  settings: Settings;
  secrets: Secrets;
  listeners: Listeners;
  scope: 'per-device' | 'shared';
  /** Whether generated secrets may be shown (stdout is a terminal). */
  showSecrets: boolean;
  /** The embedded MQTT broker, when it runs. */
  broker?: { port: number };
}

function mqttLines(input: BannerInput, dataArg: string): string[] {
  const { mqtt } = input.settings;
  if (mqtt.mode === 'off') return [`MQTT:          off${input.settings.auth === 'none' ? ' (it carries the sealed protocol: E2EE_AUTH=hmac-sha256)' : ' (E2EE_MQTT=off)'}`];
  const where = mqtt.mode === 'embedded' ? `mqtt://${mqtt.host}:${input.broker?.port ?? mqtt.port} (embedded; E2EE_MQTT_HOST/E2EE_MQTT_PORT)` : `mqtt://${mqtt.host}:${mqtt.port} (your broker, E2EE_MQTT)`;
  return [
    `MQTT:          ${where}, topics ${mqtt.prefix}/<id>/up/{reading,register,poll} and ${mqtt.prefix}/<id>/down`,
    `               a device over MQTT: npx esp-e2ee-keys <device id> --mqtt ${mqtt.host === '0.0.0.0' ? '<this machine>' : mqtt.host}:${input.broker?.port ?? mqtt.port}${dataArg} --out firmware/include/secrets.h`,
  ];
}

function endpointLines(base: string, settings: Settings, editorUrl: string | undefined): string[] {
  return [
    ...(settings.auth === 'none'
      ? [`Device API:    ${base}/api/devices/<mac>            POST register {ipaddr, ssid} | GET config poll (plain)`,
        `               ${base}/api/devices/<mac>/readings   POST {iv, data} (AES, auth none)`]
      : [`Device API:    ${base}/api/devices/<id>             POST register (sealed: {iv, data, mac, kv})`,
        `               ${base}/api/devices/<id>/poll        POST config poll (sealed; the answer is sealed)`,
        `               ${base}/api/devices/<id>/readings    POST reading (sealed, auth ${settings.auth})`]),
    `Operator API:  ${base}/api/devices  (Authorization: Bearer <admin token>)  GET list | PUT/DELETE /<mac> |`,
    '               GET /<mac>/readings | POST /<mac>/commands | POST /<mac>/reset | POST /<mac>/rekey',
    settings.editor ? `Editor:        ${editorUrl}/  (user "admin", password: the admin token; E2EE_ADMIN_HOST/E2EE_ADMIN_PORT)` : 'Editor:        off (E2EE_EDITOR=off)',
    settings.databaseUrl
      ? `Database:      ${describeConnection(settings.databaseUrl)} (PostgreSQL from E2EE_DATABASE_URL, shared by every instance)`
      : `Database:      ${path.join(settings.userDir, 'esp-e2ee.sqlite')}`,
    `Health check:  ${base}/healthz`,
  ];
}

/**
 * Generated secrets are shown on a terminal only: under systemd or docker, stdout goes to a log that keeps them long
 * after their file is gone or changed. Elsewhere the banner says which file holds them.
 */
function generatedLines(input: BannerInput, base: string, dataArg: string): string[] {
  const { settings, secrets, scope, showSecrets } = input;
  const notShown = 'It is not printed here, because the output is not a terminal (a service log would keep it): read it from that file.';
  const lines: string[] = [];
  const port = portOf(input.listeners.server);
  if (secrets.key.generated) {
    lines.push('', `A new AES-128 key was generated and stored in ${secrets.key.source} (mode 0600).`,
      ...(scope === 'per-device'
        ? ['It is the master key and stays here (it is not printed). Each device gets its own key, derived from it:',
          `    npx esp-e2ee-keys <device id> --url ${isWildcard(settings.host) ? `http://<this machine's address>:${port}` : base}${dataArg} --out firmware/include/secrets.h`]
        : [`Put it in the firmware's include/secrets.h as E2EE_KEY_HEX (auth mode ${settings.auth}, one key for every device).`,
          ...(showSecrets ? [`    ${secrets.key.value}`, 'It is shown only this once.'] : [notShown])]));
  }
  if (secrets.token.generated) {
    lines.push('', `A new admin token was generated and stored in ${secrets.token.source} (mode 0600).`,
      ...(showSecrets ? [`    ${secrets.token.value}`, 'It is shown only this once.'] : [notShown]));
  }
  return lines;
}

function networkLines(settings: Settings, port: number): string[] {
  if (settings.host === '127.0.0.1' || settings.host === 'localhost') return ['', 'Listening on loopback only: set HOST=0.0.0.0 to let devices on your network reach it.'];
  if (!isWildcard(settings.host)) return [];
  const addresses = reachableAddresses(settings.host);
  return ['', addresses.length
    ? `Devices on your network: use one of ${addresses.map((a) => `http://${a}:${port}`).join(', ')} as E2EE_BACKEND_URL.`
    : 'Listening on every interface, but this machine has no network address yet.'];
}

export function banner(input: BannerInput): string {
  const { settings, secrets, listeners, scope } = input;
  const base = urlOf(listeners.server, settings.host);
  const editorUrl = listeners.adminServer ? urlOf(listeners.adminServer, settings.adminHost) : undefined;
  const dataArg = settings.dataDir === path.join(input.root, 'data') ? '' : ` --data ${JSON.stringify(settings.dataDir)}`;
  return [
    '',
    '=== node-red-contrib-esp-e2ee backend ===',
    ...endpointLines(base, settings, editorUrl),
    ...mqttLines(input, dataArg),
    `AES key:       from ${secrets.key.source} (${scope === 'per-device' ? 'master key: a key per device, esp-e2ee-keys' : 'shared by every device'})`,
    `Admin token:   from ${secrets.token.source}`,
    ...generatedLines(input, base, dataArg),
    ...networkLines(settings, portOf(listeners.server)),
    '',
    `Simulated devices: npm run sim -- --url ${base}${dataArg} --devices 10 --interval 1`,
    `esp-e2ee backend ready on ${base}`,
    '',
  ].join('\n');
}
