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
#endif

namespace {

const char *const TAG = "e2ee";

// EEPROM layout: magic, uplink reserved bound, last accepted downlink SEQN.
constexpr uint32_t kMagic = 0xE2EE0001;
constexpr int kAddrMagic = 0;
constexpr int kAddrUplink = 8;
constexpr int kAddrDownlink = 16;
constexpr size_t kEepromSize = 32;
// One flash write per 32 readings; a reboot skips at most 32 numbers.
constexpr uint32_t kSeqBlock = 32;

// Bounded buffers: every length is checked before use.
constexpr size_t kPlainMax = 256;                                            // reading or command plaintext
constexpr size_t kBodyMax = 512;                                             // encrypted JSON body
constexpr size_t kPollMax = 1536;                                            // config poll response

class EepromCounter : public e2ee::CounterStore {
 public:
  explicit EepromCounter(int addr) : addr_(addr) {}
  bool load(uint64_t *value) override {
    uint32_t magic = 0;
    EEPROM.get(kAddrMagic, magic);
    if (magic != kMagic) return false;
    EEPROM.get(addr_, *value);
    return true;
  }
  bool save(uint64_t value) override {
    EEPROM.put(kAddrMagic, kMagic);
    EEPROM.put(addr_, value);
    return EEPROM.commit();
  }

 private:
  int addr_;
};

EepromCounter uplinkStore(kAddrUplink);
EepromCounter downlinkStore(kAddrDownlink);
e2ee::SeqCounter seq(uplinkStore, kSeqBlock);
e2ee::DownlinkGuard downlink(downlinkStore);
e2ee::Keys keys;
ESP8266WebServer server(80);

char deviceId[65];  // E2EE_DEVICE_ID (at most 64 characters), else the MAC "5C:CF:7F:01:02:03"
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

void hardwareRandom(uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i += 4) {
    const uint32_t r = RANDOM_REG32;  // the ESP8266's hardware RNG
    for (size_t k = 0; k < 4 && i + k < n; k++) out[i + k] = uint8_t(r >> (8 * k));
  }
}

String url(const char *suffix) { return String(E2EE_BACKEND_URL) + "/api/devices/" + deviceId + suffix; }

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

bool registerDevice() {
  WiFiClient client;
  HTTPClient http;
  const int n = snprintf(body, sizeof(body), "{\"ipaddr\":\"%s\",\"ssid\":\"%s\"}", WiFi.localIP().toString().c_str(), WiFi.SSID().c_str());
  if (n < 0 || size_t(n) >= sizeof(body)) return false;
  http.begin(client, url(""));
  http.addHeader("Content-Type", "application/json");
  const int code = http.POST(reinterpret_cast<uint8_t *>(body), size_t(n));
  http.end();
  Serial.printf("[%s] register as %s: HTTP %d\n", TAG, deviceId, code);
  return code == 200 || code == 201;
}

void handleCommandText(const char *text, size_t len, const char *via) {
  e2ee::Command cmd;
  const e2ee::CommandStatus st = downlink.accept(keys, deviceId, text, len, work, sizeof(work), &cmd);
  if (st != e2ee::CommandStatus::Ok) {
    static const char *const names[] = {"ok", "bad body", "rejected", "bad command", "replay", "flash write failed"};
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
  if (!e2ee::build_reading(data, n, plain, sizeof(plain), &plainLen) ||
      !e2ee::seal(keys, deviceId, reinterpret_cast<uint8_t *>(plain), plainLen, hardwareRandom, work, sizeof(work), body, sizeof(body), &bodyLen)) {
    Serial.printf("[%s] reading %lu does not fit the buffers\n", TAG, static_cast<unsigned long>(n));
    return;
  }
  WiFiClient client;
  HTTPClient http;
  http.begin(client, url("/readings"));
  http.addHeader("Content-Type", "application/json");
  const int code = http.POST(reinterpret_cast<uint8_t *>(body), bodyLen);
  http.end();
  Serial.printf("[%s] reading SEQN %lu: HTTP %d\n", TAG, static_cast<unsigned long>(n), code);
  if (code == 404) registered = false;
}

void pollConfig() {
  WiFiClient client;
  HTTPClient http;
  http.begin(client, url(""));
  const int code = http.GET();
  if (code != 200) {
    Serial.printf("[%s] config poll: HTTP %d\n", TAG, code);
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
  uint64_t sn = 0;
  if (e2ee::json_uint(poll, got, "cfgsn", &sn) && sn != cfgsn) {
    cfgsn = sn;
    e2ee::Span data;
    if (e2ee::json_member(poll, got, "data", &data)) {
      // The configuration fields this firmware knows; others are ignored.
      uint64_t interval = 0;
      bool led = false;
      if (e2ee::json_uint(data.ptr, data.len, "interval", &interval) && interval > 0 && interval < 86400) intervalS = uint32_t(interval);
      if (e2ee::json_bool(data.ptr, data.len, "led", &led)) digitalWrite(LED_BUILTIN, led ? LOW : HIGH);  // active low
    }
    Serial.printf("[%s] config %lu: interval %u s\n", TAG, static_cast<unsigned long>(cfgsn), unsigned(intervalS));
  }
  e2ee::Span commands;
  if (e2ee::json_member(poll, got, "commands", &commands)) {
    e2ee::Span item;
    for (size_t i = 0; e2ee::json_array_item(commands.ptr, commands.len, i, &item); i++) handleCommandText(item.ptr, item.len, "poll");
  }
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
  if (!e2ee::keys_from_hex(&keys, E2EE_KEY_HEX, E2EE_AUTH_HMAC ? e2ee::Auth::HmacSha256 : e2ee::Auth::None)) {
    Serial.printf("[%s] E2EE_KEY_HEX must be 32, 48 or 64 hex digits (see include/secrets.example.h). Halting.\n", TAG);
    for (;;) delay(1000);
  }
#ifdef E2EE_DEVICE_ID
  // Provisioned with a per-device key (esp-e2ee-keys): the key is derived for exactly this id.
  static_assert(sizeof(E2EE_DEVICE_ID) <= sizeof(deviceId), "E2EE_DEVICE_ID is at most 64 characters");
  snprintf(deviceId, sizeof(deviceId), "%s", E2EE_DEVICE_ID);
#else
  const String mac = WiFi.macAddress();
  snprintf(deviceId, sizeof(deviceId), "%s", mac.c_str());
#endif
  Serial.printf("[%s] device %s, auth %s, backend %s\n", TAG, deviceId, E2EE_AUTH_HMAC ? "hmac-sha256" : "none", E2EE_BACKEND_URL);
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
