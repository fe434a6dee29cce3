// esp-e2ee firmware for the ESP8266 (Arduino core). Thin glue: WiFi, HTTP, EEPROM and the
// sensor live here; everything worth testing is in lib/e2ee and tested on the host.
#include <Arduino.h>
#include <EEPROM.h>
#include <ESP8266HTTPClient.h>
#include <ESP8266WebServer.h>
#include <ESP8266WiFi.h>

#include <e2ee.h>

#if __has_include("secrets.h")
#include "secrets.h"
#else
#warning "include/secrets.h not found: using include/secrets.example.h (copy it to secrets.h and fill it in)"
#include "secrets.example.h"
#define E2EE_SAMPLE_SECRETS 1
#endif

namespace {

const char *const TAG = "e2ee";

// EEPROM layout: three slots, each with its own magic and CRC-32 (lib/e2ee/src/e2ee_store.h), so an erased,
// zeroed, half-written or foreign EEPROM is detected slot by slot: the uplink reserved bound, the last accepted
// downlink SEQN, and the key a rekey gave the device (version and 16 bytes).
constexpr size_t kAddrUplink = 0;
constexpr size_t kAddrDownlink = kAddrUplink + e2ee::SlotCounter::kFootprint;
constexpr size_t kAddrKey = kAddrDownlink + e2ee::SlotCounter::kFootprint;
constexpr size_t kEepromSize = kAddrKey + e2ee::KeySlot::kFootprint;
constexpr uint32_t kUplinkMagic = 0xE2EE5501;
constexpr uint32_t kDownlinkMagic = 0xE2EE5502;
constexpr uint32_t kKeyMagic = 0xE2EE4B32;
// One flash write per 32 readings; a reboot skips at most 32 numbers.
constexpr uint32_t kSeqBlock = 32;

// Bounded buffers: every length is checked before use.
constexpr size_t kPlainMax = 256;                                            // reading or command plaintext
constexpr size_t kBodyMax = 512;                                             // encrypted JSON body
constexpr size_t kPollMax = 1536;                                            // config poll response (declared as rxbuf)

/// The core's EEPROM emulation (a RAM image of one flash sector, written back by commit()) as lib/'s Flash.
class EepromFlash : public e2ee::Flash {
 public:
  size_t size() const override { return kEepromSize; }
  uint8_t read(size_t addr) const override { return EEPROM.read(int(addr)); }
  void write(size_t addr, uint8_t value) override { EEPROM.write(int(addr), value); }
  bool commit() override { return EEPROM.commit(); }
};

EepromFlash flash;
e2ee::SlotCounter uplinkStore(flash, kAddrUplink, kUplinkMagic);
e2ee::SlotCounter downlinkStore(flash, kAddrDownlink, kDownlinkMagic);
e2ee::KeySlot keySlot(flash, kAddrKey, kKeyMagic);
e2ee::SeqCounter seq(uplinkStore, kSeqBlock);
e2ee::DownlinkGuard downlink(downlinkStore);
e2ee::Keys keys;
ESP8266WebServer server(80);

char deviceId[65];      // E2EE_DEVICE_ID (at most 64 characters), else the MAC "5C:CF:7F:01:02:03"
char backendUrl[129];   // E2EE_BACKEND_URL, checked and without trailing slashes
// After this many registrations and readings in a row refused with HTTP 400, say what that usually means.
constexpr uint32_t kRefusalHint = 5;
e2ee::RefusalStreak refusals(kRefusalHint);
uint32_t intervalS = E2EE_INTERVAL_S;
uint64_t cfgsn = 0;
uint32_t lastTick = 0;
bool registered = false;

// Static work buffers (all well under 1 KiB except the poll response, 1.5 KiB, kept here in
// the sketch rather than in lib/).
uint8_t work[kPlainMax + 32];
char plain[kPlainMax];
char body[kBodyMax];
char poll[kPollMax];
#if E2EE_AUTH_HMAC
uint8_t answer[kPollMax];  // the opened config answer
#endif

#ifndef E2EE_KEY_VERSION
#define E2EE_KEY_VERSION 0
#endif

/// Says once at boot what a damaged or empty slot means, and what was done about it.
void reportSlot(const char *what, e2ee::SlotState state, const char *consequence) {
  if (state == e2ee::SlotState::Ok) return;
  Serial.printf("[%s] storage: %s %s: %s\n", TAG, what, e2ee::slot_state_name(state), consequence);
}

#if E2EE_AUTH_HMAC
/// A key from a rekey, stored before its command is acknowledged: used from the next boot on.
bool loadStoredKey() {
  uint32_t version = 0;
  uint8_t key[16];
  const e2ee::SlotState state = keySlot.load(&version, key);
  // Erased is the normal case (never rekeyed); anything else but a valid record is worth a line.
  if (state != e2ee::SlotState::Erased) reportSlot("rekeyed key", state, "using E2EE_KEY_HEX from secrets.h");
  if (state != e2ee::SlotState::Ok || version <= uint32_t(E2EE_KEY_VERSION)) return false;
  if (!e2ee::keys_init(&keys, key, sizeof(key), e2ee::Auth::HmacSha256)) return false;
  keys.kv = version;
  return true;
}
#endif

bool storeKey(uint32_t version, const uint8_t key[16]) { return keySlot.save(version, key); }

void hardwareRandom(uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i += 4) {
    const uint32_t r = RANDOM_REG32;  // the ESP8266's hardware RNG
    for (size_t k = 0; k < 4 && i + k < n; k++) out[i + k] = uint8_t(r >> (8 * k));
  }
}

String url(const char *suffix) { return String(backendUrl) + "/api/devices/" + deviceId + suffix; }

/// One line per HTTP exchange; a negative code (no HTTP answer at all) with the core's explanation.
void logHttp(const char *what, int code) {
  if (code < 0) {
    Serial.printf("[%s] %s: HTTP %d (%s): is the backend at %s running and reachable from this WiFi?\n", TAG, what, code,
                  HTTPClient::errorToString(code).c_str(), backendUrl);
  } else {
    Serial.printf("[%s] %s: HTTP %d\n", TAG, what, code);
  }
}

/// Counts registrations and readings refused in a row (the backend answers every rejection with the same 400), and
/// once there are kRefusalHint of them says what that usually means.
void noteRefusal(int code) {
  if (!refusals.record(code)) return;
  Serial.printf("[%s] %u requests in a row refused (HTTP 400). Usually: the backend holds another key or auth mode for %s\n"
                "      (E2EE_KEY_HEX, E2EE_AUTH_HMAC, E2EE_KEY_VERSION), or its counter for this device is ahead of this one's\n"
                "      (after a flash erase): an operator resets it with POST /api/devices/%s/reset. The reason is in the Node-RED log.\n",
                TAG, unsigned(kRefusalHint), deviceId, deviceId);
}

/// Stops with a reason: a setting in secrets.h that cannot work.
[[noreturn]] void halt(const char *reason) {
  Serial.printf("[%s] %s. Halting.\n", TAG, reason);
  for (;;) delay(1000);
}

bool connectWifi() {
  if (WiFi.status() == WL_CONNECTED) return true;
  Serial.printf("[%s] WiFi: connecting to \"%s\"...\n", TAG, E2EE_WIFI_SSID);
  WiFi.mode(WIFI_STA);
  WiFi.begin(E2EE_WIFI_SSID, E2EE_WIFI_PASSWORD);
  for (int i = 0; i < 40 && WiFi.status() != WL_CONNECTED; i++) delay(500);
  if (WiFi.status() != WL_CONNECTED) {
    Serial.printf("[%s] WiFi: could not connect (status %d). Check E2EE_WIFI_SSID and E2EE_WIFI_PASSWORD in include/secrets.h;\n"
                  "      the ESP8266 only joins 2.4 GHz networks. Retrying in %u s.\n", TAG, int(WiFi.status()), unsigned(intervalS));
    return false;
  }
  Serial.printf("[%s] WiFi: connected, IP %s\n", TAG, WiFi.localIP().toString().c_str());
  return true;
}

void applyAnswer(const char *text, size_t len);

/// Seals plaintext `plain[0..len)` as `type` into `body`; false when it does not fit.
bool sealUplink(e2ee::MsgType type, size_t len, size_t *bodyLen) {
  return e2ee::seal(keys, type, deviceId, reinterpret_cast<uint8_t *>(plain), len, hardwareRandom, work, sizeof(work), body, sizeof(body), bodyLen);
}

#if E2EE_AUTH_HMAC
/// POSTs `body` to `path`; a 200/201 answer is a sealed config answer to request `seqn`.
int exchange(const char *path, size_t bodyLen, uint64_t seqn, const char *what) {
  WiFiClient client;
  HTTPClient http;
  http.begin(client, url(path));
  http.addHeader("Content-Type", "application/json");
  const int code = http.POST(reinterpret_cast<uint8_t *>(body), bodyLen);
  if (code == 200 || code == 201) {
    const int size = http.getSize();
    if (size <= 0 || size_t(size) >= sizeof(poll)) {
      Serial.printf("[%s] %s: answer of %d bytes does not fit\n", TAG, what, size);
      http.end();
      return -100;
    }
    const size_t got = http.getStream().readBytes(poll, size_t(size));
    poll[got] = '\0';
    size_t n = 0;
    // Applied only when it verifies as a config answer under this device's key and answers this request.
    uint64_t re = 0;
    if (e2ee::open(keys, e2ee::MsgType::Config, deviceId, poll, got, answer, sizeof(answer), &n) != e2ee::OpenStatus::Ok ||
        !e2ee::json_uint(reinterpret_cast<char *>(answer), n, "re", &re) || re != seqn) {
      Serial.printf("[%s] %s: answer refused (not authentic, or not for this request)\n", TAG, what);
      http.end();
      return -101;
    }
    applyAnswer(reinterpret_cast<char *>(answer), n);
  }
  http.end();
  return code;
}
#endif

bool registerDevice() {
#if E2EE_AUTH_HMAC
  uint64_t n = 0;
  if (!seq.next(&n)) return false;
  const int len = snprintf(plain, sizeof(plain), "{\"ipaddr\":\"%s\",\"ssid\":\"%s\",\"cmdport\":80,\"rxbuf\":%u,\"SEQN\":%llu,\"ack\":%llu}",
                           WiFi.localIP().toString().c_str(), WiFi.SSID().c_str(), unsigned(kPollMax - 1),
                           static_cast<unsigned long long>(n), static_cast<unsigned long long>(downlink.last()));
  size_t bodyLen = 0;
  if (len < 0 || size_t(len) >= sizeof(plain) || !sealUplink(e2ee::MsgType::Register, size_t(len), &bodyLen)) return false;
  const int code = exchange("", bodyLen, n, "register");
#else
  WiFiClient client;
  HTTPClient http;
  // rxbuf: the backend then keeps each plain poll answer within the buffer, instead of offering commands (which
  // counts as delivering them in this mode) in an answer too large to be read.
  const int n = snprintf(body, sizeof(body), "{\"ipaddr\":\"%s\",\"ssid\":\"%s\",\"rxbuf\":%u}", WiFi.localIP().toString().c_str(), WiFi.SSID().c_str(),
                         unsigned(kPollMax - 1));
  if (n < 0 || size_t(n) >= sizeof(body)) return false;
  http.begin(client, url(""));
  http.addHeader("Content-Type", "application/json");
  const int code = http.POST(reinterpret_cast<uint8_t *>(body), size_t(n));
  http.end();
#endif
  char what[96];
  snprintf(what, sizeof(what), "register as %s", deviceId);
  logHttp(what, code);
  noteRefusal(code);
  return code == 200 || code == 201;
}

void handleCommandText(const char *text, size_t len, const char *via) {
  e2ee::Command cmd;
  const e2ee::CommandStatus st = downlink.accept(keys, deviceId, text, len, work, sizeof(work), &cmd);
  if (st == e2ee::CommandStatus::Rekey) {
    // The new key goes to flash first, then the command's SEQN: acknowledged only once the key is kept.
    if (!storeKey(cmd.rekey_kv, cmd.rekey_key) || !downlink.commit(cmd.seqn)) {
      Serial.printf("[%s] rekey %lu via %s: flash write failed\n", TAG, static_cast<unsigned long>(cmd.seqn), via);
      return;
    }
    e2ee::keys_init(&keys, cmd.rekey_key, sizeof(cmd.rekey_key), e2ee::Auth::HmacSha256);
    keys.kv = cmd.rekey_kv;
    Serial.printf("[%s] command %lu via %s: rekey to key version %lu\n", TAG, static_cast<unsigned long>(cmd.seqn), via, static_cast<unsigned long>(cmd.rekey_kv));
    return;
  }
  if (st != e2ee::CommandStatus::Ok) {
    static const char *const names[] = {"ok", "bad body", "rejected", "bad command", "replay", "flash write failed", "rekey"};
    Serial.printf("[%s] command via %s refused: %s\n", TAG, via, names[int(st)]);
    return;
  }
  bool led = false;
  uint64_t interval = 0;
  if (e2ee::json_bool(cmd.cmd.ptr, cmd.cmd.len, "led", &led)) digitalWrite(LED_BUILTIN, led ? LOW : HIGH);  // active low
  if (e2ee::json_uint(cmd.cmd.ptr, cmd.cmd.len, "interval", &interval) && interval > 0 && interval < 86400) intervalS = uint32_t(interval);
  Serial.printf("[%s] command %lu via %s: %.*s\n", TAG, static_cast<unsigned long>(cmd.seqn), via, int(cmd.cmd.len), cmd.cmd.ptr);
}

void onCommand() {
  const String &text = server.arg("plain");
  if (text.length() == 0 || text.length() >= kBodyMax) {
    server.send(413, "application/json", "{\"status\":\"NOK\"}");
    return;
  }
  const uint64_t before = downlink.last();
  handleCommandText(text.c_str(), text.length(), "push");
  const bool accepted = downlink.last() != before;
  server.send(accepted ? 200 : 400, "application/json", accepted ? "{\"status\":\"OK\"}" : "{\"status\":\"NOK\"}");
}

void postReading() {
  uint64_t n = 0;
  if (!seq.next(&n)) {
    Serial.printf("[%s] cannot reserve sequence numbers (flash write failed)\n", TAG);
    return;
  }
  char data[96];
  snprintf(data, sizeof(data), "{\"a0\":%d,\"heap\":%u,\"uptime\":%lu}", analogRead(A0), unsigned(ESP.getFreeHeap()), static_cast<unsigned long>(millis() / 1000));
  size_t plainLen = 0;
  size_t bodyLen = 0;
  // With hmac, every uplink acknowledges the last accepted command.
  const bool built = E2EE_AUTH_HMAC ? e2ee::build_reading_ack(data, n, downlink.last(), plain, sizeof(plain), &plainLen)
                                    : e2ee::build_reading(data, n, plain, sizeof(plain), &plainLen);
  if (!built || !sealUplink(e2ee::MsgType::Reading, plainLen, &bodyLen)) {
    Serial.printf("[%s] reading %lu does not fit the buffers\n", TAG, static_cast<unsigned long>(n));
    return;
  }
  WiFiClient client;
  HTTPClient http;
  http.begin(client, url("/readings"));
  http.addHeader("Content-Type", "application/json");
  const int code = http.POST(reinterpret_cast<uint8_t *>(body), bodyLen);
  http.end();
  char what[40];
  snprintf(what, sizeof(what), "reading SEQN %lu", static_cast<unsigned long>(n));
  logHttp(what, code);
  if (code == 404) registered = false;
  noteRefusal(code);
}

void applyAnswer(const char *text, size_t got) {
  uint64_t sn = 0;
  if (e2ee::json_uint(text, got, "cfgsn", &sn) && sn != cfgsn) {
    cfgsn = sn;
    e2ee::Span data;
    if (e2ee::json_member(text, got, "data", &data)) {
      // The configuration fields this firmware knows; others are ignored.
      uint64_t interval = 0;
      bool led = false;
      if (e2ee::json_uint(data.ptr, data.len, "interval", &interval) && interval > 0 && interval < 86400) intervalS = uint32_t(interval);
      if (e2ee::json_bool(data.ptr, data.len, "led", &led)) digitalWrite(LED_BUILTIN, led ? LOW : HIGH);  // active low
    }
    Serial.printf("[%s] config %lu: interval %u s\n", TAG, static_cast<unsigned long>(cfgsn), unsigned(intervalS));
  }
  e2ee::Span commands;
  if (e2ee::json_member(text, got, "commands", &commands)) {
    e2ee::Span item;
    for (size_t i = 0; e2ee::json_array_item(commands.ptr, commands.len, i, &item); i++) handleCommandText(item.ptr, item.len, "poll");
  }
}

void pollConfig() {
#if E2EE_AUTH_HMAC
  // A sealed poll: {"SEQN":n,"ack":a}; the answer is sealed and names this SEQN.
  uint64_t n = 0;
  if (!seq.next(&n)) return;
  const int len = snprintf(plain, sizeof(plain), "{\"SEQN\":%llu,\"ack\":%llu}", static_cast<unsigned long long>(n), static_cast<unsigned long long>(downlink.last()));
  size_t bodyLen = 0;
  if (len < 0 || size_t(len) >= sizeof(plain) || !sealUplink(e2ee::MsgType::Poll, size_t(len), &bodyLen)) return;
  const int code = exchange("/poll", bodyLen, n, "config poll");
  if (code != 200) logHttp("config poll", code);
  if (code == 404) registered = false;
#else
  WiFiClient client;
  HTTPClient http;
  http.begin(client, url(""));
  const int code = http.GET();
  if (code != 200) {
    logHttp("config poll", code);
    if (code == 404) registered = false;
    http.end();
    return;
  }
  const int size = http.getSize();
  if (size <= 0 || size_t(size) >= sizeof(poll)) {
    Serial.printf("[%s] config poll: response of %d bytes does not fit\n", TAG, size);
    http.end();
    return;
  }
  const size_t got = http.getStream().readBytes(poll, size_t(size));
  http.end();
  poll[got] = '\0';
  applyAnswer(poll, got);
#endif
}

}  // namespace

void setup() {
  Serial.begin(115200);
  Serial.println();
  pinMode(LED_BUILTIN, OUTPUT);
  digitalWrite(LED_BUILTIN, HIGH);
  EEPROM.begin(kEepromSize);
  seq.begin();
  downlink.begin();
  reportSlot("uplink counter", uplinkStore.state(),
             "sequence numbers start at 0. If this device sent readings before (a flash erase, a new module with an old id), "
             "the backend refuses them until an operator resets its counter: POST /api/devices/<id>/reset");
  reportSlot("downlink counter", downlinkStore.state(), "commands are accepted from SEQN 1 again");
  // Written back valid at once (both start at 0, as they were read), so the next boot is silent about them.
  if (!uplinkStore.repair() || !downlinkStore.repair()) Serial.printf("[%s] storage: the EEPROM cannot be written\n", TAG);
#ifdef E2EE_SAMPLE_SECRETS
  Serial.printf("[%s] include/secrets.h is missing: running with the sample's WiFi, backend and key, which will not work.\n"
                "      Make it with npx esp-e2ee-keys <device id> --url <backend> > include/secrets.h (see firmware/README.md).\n", TAG);
#endif
  const e2ee::UrlStatus urlStatus = e2ee::normalize_backend_url(E2EE_BACKEND_URL, backendUrl, sizeof(backendUrl));
  if (urlStatus != e2ee::UrlStatus::Ok) halt(e2ee::url_status_text(urlStatus));
  if (!e2ee::keys_from_hex(&keys, E2EE_KEY_HEX, E2EE_AUTH_HMAC ? e2ee::Auth::HmacSha256 : e2ee::Auth::None)) {
    halt("E2EE_KEY_HEX must be 32, 48 or 64 hex digits (see include/secrets.example.h)");
  }
#if E2EE_AUTH_HMAC
  keys.kv = E2EE_KEY_VERSION;
  if (loadStoredKey()) Serial.printf("[%s] using the key of version %lu from a rekey\n", TAG, static_cast<unsigned long>(keys.kv));
#endif
#ifdef E2EE_DEVICE_ID
  // Provisioned with a per-device key (esp-e2ee-keys): the key is derived for exactly this id.
  static_assert(sizeof(E2EE_DEVICE_ID) <= sizeof(deviceId), "E2EE_DEVICE_ID is at most 64 characters");
  snprintf(deviceId, sizeof(deviceId), "%s", E2EE_DEVICE_ID);
#else
  const String mac = WiFi.macAddress();
  snprintf(deviceId, sizeof(deviceId), "%s", mac.c_str());
#endif
  Serial.printf("[%s] device %s, auth %s, backend %s\n", TAG, deviceId, E2EE_AUTH_HMAC ? "hmac-sha256" : "none", backendUrl);
  server.on("/command", HTTP_POST, onCommand);
  server.begin();
}

void loop() {
  server.handleClient();
  if (lastTick != 0 && millis() - lastTick < intervalS * 1000UL) return;
  lastTick = millis() | 1;
  if (!connectWifi()) return;
  if (!registered) registered = registerDevice();
  if (!registered) return;
  postReading();
  pollConfig();
}
