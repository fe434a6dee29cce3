#pragma once
// Copy this file to include/secrets.h (git-ignored) and fill it in.
// Any value can also be given as a build flag, e.g. -DE2EE_WIFI_SSID=\"lab\".
// The build warns when it falls back to this sample.

#ifndef E2EE_WIFI_SSID
#define E2EE_WIFI_SSID "your-wifi"
#endif
#ifndef E2EE_WIFI_PASSWORD
#define E2EE_WIFI_PASSWORD "your-wifi-password"
#endif
// The Node-RED backend, as `npm start` prints it (use the machine's LAN address and HOST=0.0.0.0).
#ifndef E2EE_BACKEND_URL
#define E2EE_BACKEND_URL "http://192.168.1.10:1880"
#endif
// The id the device reports as (default: its WiFi MAC address). With a per-device key (the backend's default),
// `npx esp-e2ee-keys <id> --url <backend>` prints a whole secrets.h with this id and the device's own key.
// #define E2EE_DEVICE_ID "5C:CF:7F:AA:00:01"
// The AES key: 32 hex digits: the device's own key (esp-e2ee-keys) with a per-device master on the backend, or
// the fleet's shared key (the backend's aes-key with scope "shared", e.g. E2EE_AUTH=none).
#ifndef E2EE_KEY_HEX
#define E2EE_KEY_HEX "00000000000000000000000000000000"
#endif
// 1: HMAC-SHA256 encrypt-then-MAC (the backend's default); 0: plain crypto-js compatible AES.
#ifndef E2EE_AUTH_HMAC
#define E2EE_AUTH_HMAC 1
#endif
// Seconds between readings and config polls, until the backend's config says otherwise.
#ifndef E2EE_INTERVAL_S
#define E2EE_INTERVAL_S 30
#endif
// The transport: 1 for MQTT through the broker below (`esp-e2ee-keys <id> --mqtt host:port` writes this part with
// the device's broker credential), 0 for HTTP to E2EE_BACKEND_URL.
#ifndef E2EE_TRANSPORT_MQTT
#define E2EE_TRANSPORT_MQTT 0
#endif
// #define E2EE_MQTT_HOST "192.168.1.10"
// #define E2EE_MQTT_PORT 1883
// #define E2EE_MQTT_USER "5C%3ACF%3A7F%3AAA%3A00%3A01"
// #define E2EE_MQTT_PASSWORD "<32 hex digits from esp-e2ee-keys>"
// #define E2EE_MQTT_PREFIX "esp-e2ee"
