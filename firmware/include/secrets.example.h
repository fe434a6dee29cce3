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
// The AES key: 32, 48 or 64 hex digits (npm start stores it in <data>/aes-key.hex).
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
