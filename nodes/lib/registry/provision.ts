/**
 * Provisioning a device under a per-device master key: its `secrets.h` for the firmware (include/secrets.h), with
 * the device id, the device's own key (never the master), the backend URL and placeholders for the WiFi settings.
 */
import { validateDeviceId } from './rules';

export interface SecretsOptions {
  /**
   * The device's own key (DeviceKeyring.deviceKey / deriveDeviceKey), never the master; in plain mode (hmac false)
   * the one key the backend and every device share (E2EE_AUTH=none has no per-device keys).
   */
  deviceKey: Buffer;
  deviceId: string;
  /** Key version (default 0). */
  version?: number;
  /** The backend as the device reaches it, e.g. http://192.168.1.10:1880. */
  backendUrl: string;
  hmac?: boolean;
  /** The MQTT transport: the broker as the device reaches it, the device's broker password, the topic prefix. */
  mqtt?: { host: string; port: number; user: string; password: string; prefix: string };
}

/** A C string literal: backslashes and quotes escaped, anything outside printable ASCII as an octal escape. */
function cString(text: string): string {
  return `"${[...Buffer.from(text, 'utf8')].map((b) => (b === 0x22 || b === 0x5c ? `\\${String.fromCharCode(b)}` : b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`)).join('')}"`;
}

/** A random device id for "generate": `esp-` and 12 hex digits. */
export function generateDeviceId(random: (n: number) => Buffer): string {
  return `esp-${random(6).toString('hex')}`;
}

/** The complete secrets.h of one device. Throws a ValidationError for an invalid device id. */
export function renderSecretsH(o: SecretsOptions): string {
  const deviceId = validateDeviceId(o.deviceId);
  const version = o.version ?? 0;
  const key = o.deviceKey.toString('hex');
  return `#pragma once
// secrets.h of device ${deviceId} (key version ${version}), made by esp-e2ee-keys.
// Copy it to firmware/include/secrets.h (git-ignored). It holds this device's own key only: keep it private, and
// give every device its own file. Fill in the WiFi settings.

#ifndef E2EE_WIFI_SSID
#define E2EE_WIFI_SSID "your-wifi"
#endif
#ifndef E2EE_WIFI_PASSWORD
#define E2EE_WIFI_PASSWORD "your-wifi-password"
#endif
// The Node-RED backend as the device reaches it (no trailing slash).
#ifndef E2EE_BACKEND_URL
#define E2EE_BACKEND_URL ${cString(o.backendUrl.replace(/\/+$/, ''))}
#endif
// The id this device reports as; its key is derived for exactly this id.
#ifndef E2EE_DEVICE_ID
#define E2EE_DEVICE_ID ${cString(deviceId)}
#endif
${o.hmac === false ? '// The fleet\'s shared key (E2EE_AUTH=none: every device and the backend hold the same key; no per-device keys).' : `// This device's AES-128 key (per-device scope), version ${version}.`}
#ifndef E2EE_KEY_HEX
#define E2EE_KEY_HEX "${key}"
#endif
#ifndef E2EE_KEY_VERSION
#define E2EE_KEY_VERSION ${version}
#endif
// 1: HMAC-SHA256 encrypt-then-MAC (the backend's default); 0: plain crypto-js compatible AES.
#ifndef E2EE_AUTH_HMAC
#define E2EE_AUTH_HMAC ${o.hmac === false ? 0 : 1}
#endif
// Seconds between readings and config polls, until the backend's config says otherwise.
#ifndef E2EE_INTERVAL_S
#define E2EE_INTERVAL_S 30
#endif
${o.mqtt ? mqttLines(o.mqtt) : ''}`;
}

/** secrets.h's MQTT part: the transport, the broker, the device's broker credential (user = its id) and prefix. */
function mqttLines(m: NonNullable<SecretsOptions['mqtt']>): string {
  return `// The transport: MQTT through the broker below (the same sealed messages; 0 or unset: HTTP to E2EE_BACKEND_URL).
#ifndef E2EE_TRANSPORT_MQTT
#define E2EE_TRANSPORT_MQTT 1
#endif
#ifndef E2EE_MQTT_HOST
#define E2EE_MQTT_HOST ${cString(m.host)}
#endif
#ifndef E2EE_MQTT_PORT
#define E2EE_MQTT_PORT ${m.port}
#endif
// The broker login of this device (its id, a colon written %3A; the password derived from the master): it limits
// what the device may do on the broker. The end-to-end protection does not rest on it.
#ifndef E2EE_MQTT_USER
#define E2EE_MQTT_USER ${cString(m.user)}
#endif
#ifndef E2EE_MQTT_PASSWORD
#define E2EE_MQTT_PASSWORD ${cString(m.password)}
#endif
#ifndef E2EE_MQTT_PREFIX
#define E2EE_MQTT_PREFIX ${cString(m.prefix)}
#endif
`;
}
