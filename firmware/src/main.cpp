// esp-e2ee firmware for the ESP8266 (Arduino core). Only glue: the device's behaviour is e2ee::Device in lib/e2ee
// (host-tested against a fake backend and a fake broker); this file gives it the core's WiFi, HTTP client (or
// PubSubClient for MQTT), raw flash and RTC memory, serial, clock, hardware RNG, sensor and LED, and calls it from
// setup() and loop(). Nothing here blocks for long: the WiFi joins in the background, HTTP waits at most kHttpTimeoutMs
// per step, and a sleeper (E2EE_SLEEP_S) goes to deep sleep when its wake is done.
#include <Arduino.h>
#include <ESP8266HTTPClient.h>
#include <ESP8266WebServer.h>
#include <ESP8266WiFi.h>
#include <PubSubClient.h>
#include <flash_hal.h>

#include <e2ee.h>

#if __has_include("secrets.h")
#include "secrets.h"
#else
#warning "include/secrets.h not found: using include/secrets.example.h (copy it to secrets.h and fill it in)"
#include "secrets.example.h"
#define E2EE_SAMPLE_SECRETS 1
#endif

#ifndef E2EE_KEY_VERSION
#define E2EE_KEY_VERSION 0
#endif
// Seconds of deep sleep between readings: a battery device, one exchange per wake (GPIO16 wired to RST); 0: always on.
#ifndef E2EE_SLEEP_S
#define E2EE_SLEEP_S 0
#endif
// 1: MQTT through the broker in secrets.h (esp-e2ee-keys --mqtt writes it); 0: HTTP to E2EE_BACKEND_URL.
#ifndef E2EE_TRANSPORT_MQTT
#define E2EE_TRANSPORT_MQTT 0
#endif
#if E2EE_TRANSPORT_MQTT
#ifndef E2EE_MQTT_PREFIX
#define E2EE_MQTT_PREFIX "esp-e2ee"
#endif
#else
#define E2EE_MQTT_HOST ""
#define E2EE_MQTT_PORT 0
#define E2EE_MQTT_USER ""
#define E2EE_MQTT_PASSWORD ""
#define E2EE_MQTT_PREFIX ""
#endif

// ---- Your sensor --------------------------------------------------------------------------------------------------
/// The reading: write one JSON object into json (size bytes, with its NUL; at most 127 characters) and return true, or
/// return false to send nothing this time. It is sent as "data", and Node-RED hands it to your flows as
/// msg.payload.data. Numbers can be charted in the Devices sidebar; "units": {"t": "C"} names their units. A battery
/// device calls this before its WiFi starts: keep it quick. (firmware/README.md, "Your own sensor".)
bool sample(char *json, size_t size) {
  const int n = snprintf(json, size, "{\"a0\":%d,\"heap\":%u,\"uptime\":%lu}", analogRead(A0), unsigned(ESP.getFreeHeap()),
                         static_cast<unsigned long>(::millis() / 1000));
  return n > 0 && size_t(n) < size;
}

namespace {

constexpr uint16_t kCommandPort = 80;
/// HTTPClient's timeout for each step (the DNS lookup, the connect, each read): the core's default is 5 s.
constexpr uint16_t kHttpTimeoutMs = 2000;

/// The journal's sectors: the last StorageLayout::kSectors (16 KiB) of the flash layout's filesystem region, which
/// this firmware does not use (d1_mini's default 4M2M layout has 2 MB). Written with the core's raw flash calls:
/// a record programs a few bytes; a sector is erased only when the journal turns over to it.
class CoreFlash : public e2ee::Flash {
 public:
  bool begin() {
    constexpr uint32_t kBytes = e2ee::StorageLayout::kSectors * kSectorSize;
    if (FS_PHYS_SIZE < kBytes) return false;
    base_ = FS_PHYS_ADDR + FS_PHYS_SIZE - kBytes;
    return true;
  }
  size_t sectors() const override { return base_ ? e2ee::StorageLayout::kSectors : 0; }
  bool read(size_t addr, uint8_t *out, size_t len) override { return ESP.flashRead(base_ + addr, out, len); }
  bool write(size_t addr, const uint8_t *data, size_t len) override { return ESP.flashWrite(base_ + addr, data, len); }
  bool erase(size_t sector) override { return ESP.flashEraseSector(base_ / kSectorSize + sector); }

 private:
  uint32_t base_ = 0;
};

/// The RTC user memory (512 bytes that survive deep sleep), through 4-byte aligned words as the core wants them.
class CoreRtc : public e2ee::RtcMemory {
 public:
  bool read(size_t offset, uint8_t *out, size_t len) override {
    uint32_t words[32];
    if (len > sizeof(words) || !ESP.rtcUserMemoryRead(offset / 4, words, len)) return false;
    memcpy(out, words, len);
    return true;
  }
  bool write(size_t offset, const uint8_t *data, size_t len) override {
    uint32_t words[32];
    if (len > sizeof(words)) return false;
    memcpy(words, data, len);
    return ESP.rtcUserMemoryWrite(offset / 4, words, len);
  }
};

/// HTTPClient: the answer is read whatever its framing (Content-Length, chunked, or until the server closes), up to
/// the buffer; a larger one is refused whole.
class CoreHttp : public e2ee::Http {
 public:
  int exchange(const char *url, const char *body, size_t body_len, char *rx, size_t rx_size, size_t *rx_len) override {
    WiFiClient client;
    HTTPClient http;
    *rx_len = 0;
    http.setTimeout(kHttpTimeoutMs);
    if (!http.begin(client, url)) return HTTPC_ERROR_CONNECTION_FAILED;
    static const char *kFraming[] = {"Transfer-Encoding"};
    http.collectHeaders(kFraming, 1);
    int code;
    if (body != nullptr) {
      http.addHeader("Content-Type", "application/json");
      code = http.POST(reinterpret_cast<const uint8_t *>(body), body_len);
    } else {
      code = http.GET();
    }
    if (code >= 200 && code < 300) {
      // The body off the connection through lib/'s HttpBody (host-tested with each framing): chunked, Content-Length,
      // or up to the close; each wait for the next bytes bounded by kHttpTimeoutMs.
      const int size = http.getSize();
      const e2ee::HttpBody::Framing framing = http.header("Transfer-Encoding").indexOf("chunked") >= 0 ? e2ee::HttpBody::Framing::Chunked
                                              : size >= 0                                              ? e2ee::HttpBody::Framing::Length
                                                                                                       : e2ee::HttpBody::Framing::Close;
      e2ee::HttpBody body(framing, size >= 0 ? size_t(size) : 0, rx, rx_size);
      WiFiClient &stream = http.getStream();
      uint32_t last = ::millis();
      while (!body.done()) {
        char buf[128];
        const int n = stream.available();
        if (n > 0) {
          const int got = stream.read(reinterpret_cast<uint8_t *>(buf), size_t(n) < sizeof(buf) ? size_t(n) : sizeof(buf));
          if (got > 0) body.feed(buf, size_t(got));
          last = ::millis();
        } else if (!stream.connected() || ::millis() - last > kHttpTimeoutMs) {
          break;
        } else {
          delay(1);
        }
      }
      const int read = body.result(rx_len);
      if (read != 0) code = read;
    }
    http.end();
    return code;
  }
  const char *error_text(int code) override {
    text_ = HTTPClient::errorToString(code);
    return text_.c_str();
  }

 private:
  String text_;
};

/// PubSubClient (MQTT 3.1.1): it subscribes at QoS 1 but publishes at QoS 0 only, so an uplink the connection loses
/// is lost (registrations and polls are retried when their answer does not come; a reading is not).
class PubSubMqtt : public e2ee::MqttClient {
 public:
  /// Room for the largest message: a config answer within rxbuf (sizeof(rx) - 1), its topic and the header.
  static constexpr uint16_t kBuffer = 1536 + 160;

  PubSubMqtt() : client_(wifi_) {}
  void begin(e2ee::MqttTransport &transport, const char *host, uint16_t port) {
    client_.setServer(host, port);
    client_.setBufferSize(kBuffer);
    // The payload stays in PubSubClient's buffer while the device reads it; nothing is published from in here.
    client_.setCallback([&transport](char *topic, uint8_t *payload, unsigned int len) {
      transport.on_message(topic, reinterpret_cast<const char *>(payload), len);
    });
  }
  bool connect(const Login &login) override {
    // Persistent session (cleanSession false); the Last Will at QoS 0, not retained.
    if (!client_.connect(login.client_id, login.user, login.password, login.will_topic, 0, false, login.will_payload, false)) return false;
    return client_.subscribe(login.subscribe, 1);
  }
  bool connected() override { return client_.connected(); }
  bool publish(const char *topic, const char *payload, size_t len) override {
    return client_.publish(topic, reinterpret_cast<const uint8_t *>(payload), unsigned(len), false);
  }
  void poll(uint32_t wait_ms) override {
    client_.loop();
    if (wait_ms > 0) delay(wait_ms);
  }
  const char *error_text() override {
    // PubSubClient's state(): -4 timeout, -2 connect failed, 4 bad credentials, 5 not authorised (see PubSubClient.h).
    snprintf(text_, sizeof(text_), "MQTT state %d", client_.state());
    return text_;
  }

 private:
  WiFiClient wifi_;
  PubSubClient client_;
  char text_[24];
};

class MillisClock : public e2ee::Clock {
 public:
  uint32_t millis() override { return ::millis(); }
};

class SerialLog : public e2ee::LogSink {
 public:
  void line(const char *text) override { Serial.println(text); }
};

/// The WiFi, never waited for: network_up() starts the join once and then only looks (the SDK reconnects by itself),
/// so the web server and the schedule keep running through an outage.
class Board : public e2ee::Actions {
 public:
  bool network_up() override {
    if (WiFi.status() == WL_CONNECTED) {
      if (!up_) Serial.printf("[e2ee] WiFi: connected, IP %s (%lu ms)\n", WiFi.localIP().toString().c_str(), static_cast<unsigned long>(::millis() - since_));
      up_ = true;
      return true;
    }
    if (up_ || !started_) {
      Serial.printf("[e2ee] WiFi: connecting to \"%s\"%s...\n", E2EE_WIFI_SSID, fast_ ? " (last access point)" : "");
      start();
    } else if (fast_ && ::millis() - since_ > 3000) {
      // The remembered access point did not take us within 3 s (it moved channel, or is gone): a full scan now,
      // within the same wake.
      Serial.println("[e2ee] WiFi: the last access point did not answer: scanning");
      fast_ = false;
      start();
    } else if (::millis() - since_ > 20000) {
      Serial.printf("[e2ee] WiFi: could not connect (status %d). Check E2EE_WIFI_SSID and E2EE_WIFI_PASSWORD in include/secrets.h;\n"
                    "      the ESP8266 only joins 2.4 GHz networks.\n", int(WiFi.status()));
      since_ = ::millis();
    }
    up_ = false;
    return false;
  }
  /// A sleeper's fast reconnect: the access point's BSSID and channel (no scan) from RTC memory.
  void network_recall(const uint8_t *in, size_t len) override {
    if (len >= 8 && in[0] == kMemoryMagic && in[7] >= 1 && in[7] <= 14) {
      memcpy(bssid_, in + 1, 6);
      channel_ = in[7];
      fast_ = true;
    }
  }
  void network_memory(uint8_t *out, size_t len) override {
    memset(out, 0, len);
    if (len < 8 || WiFi.status() != WL_CONNECTED) return;
    out[0] = kMemoryMagic;
    memcpy(out + 1, WiFi.BSSID(), 6);
    out[7] = uint8_t(WiFi.channel());
  }
  void address(char *ip, size_t ip_size, char *ssid, size_t ssid_size) override {
    snprintf(ip, ip_size, "%s", WiFi.localIP().toString().c_str());
    snprintf(ssid, ssid_size, "%s", WiFi.SSID().c_str());
  }
  bool sample(char *json, size_t size) override { return ::sample(json, size); }
  void led(bool on) override { digitalWrite(LED_BUILTIN, on ? LOW : HIGH); }  // active low

 private:
  static constexpr uint8_t kMemoryMagic = 0xA5;
  void start() {
    WiFi.persistent(false);  // the SDK would write its own flash sector at every begin()
    WiFi.mode(WIFI_STA);
#ifdef E2EE_STATIC_IP
    // Set by the owner (no DHCP: the fastest wake). E2EE_STATIC_IP, E2EE_GATEWAY, E2EE_SUBNET, E2EE_DNS as "a.b.c.d".
    IPAddress ip, gateway, subnet, dns;
    if (ip.fromString(E2EE_STATIC_IP) && gateway.fromString(E2EE_GATEWAY) && subnet.fromString(E2EE_SUBNET) && dns.fromString(E2EE_DNS)) {
      WiFi.config(ip, gateway, subnet, dns);
    }
#endif
    if (fast_) {
      WiFi.begin(E2EE_WIFI_SSID, E2EE_WIFI_PASSWORD, channel_, bssid_);
    } else {
      WiFi.begin(E2EE_WIFI_SSID, E2EE_WIFI_PASSWORD);
    }
    started_ = true;
    since_ = ::millis();
  }
  bool started_ = false;
  bool up_ = false;
  bool fast_ = false;
  uint8_t bssid_[6] = {};
  int32_t channel_ = 0;
  uint32_t since_ = 0;
};

void hardwareRandom(uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i += 4) {
    const uint32_t r = RANDOM_REG32;  // the ESP8266's hardware RNG
    for (size_t k = 0; k < 4 && i + k < n; k++) out[i + k] = uint8_t(r >> (8 * k));
  }
}

#ifdef E2EE_DEVICE_ID
// Provisioned with a per-device key (esp-e2ee-keys): the key is derived for exactly this id.
static_assert(sizeof(E2EE_DEVICE_ID) <= 65, "E2EE_DEVICE_ID is at most 64 characters");
#endif
char deviceId[65];  // E2EE_DEVICE_ID, else the MAC "5C:CF:7F:01:02:03"

// Static buffers (kept here in the sketch, not in lib/). rx - 1 is declared to the backend as rxbuf.
char rx[1536];
#if E2EE_AUTH_HMAC
uint8_t opened[1536];
#endif
char body[576];  // a 256-byte plaintext sealed, with kv and a rekey's epk
char plain[256];
uint8_t work[256 + 32];

CoreFlash flash;
CoreRtc rtc;
CoreHttp http;
MillisClock sysClock;
PubSubMqtt mqttClient;
const e2ee::MqttSettings mqttSettings = {E2EE_MQTT_HOST, E2EE_MQTT_PORT, E2EE_MQTT_USER, E2EE_MQTT_PASSWORD, E2EE_MQTT_PREFIX};
e2ee::HttpTransport overHttp(http, E2EE_BACKEND_URL);
e2ee::MqttTransport overMqtt(mqttClient, sysClock, mqttSettings);
SerialLog serialLog;
Board board;
ESP8266WebServer server(kCommandPort);

const e2ee::DeviceSettings settings = {
    deviceId, E2EE_KEY_HEX, E2EE_AUTH_HMAC ? e2ee::Auth::HmacSha256 : e2ee::Auth::None, E2EE_KEY_VERSION, E2EE_INTERVAL_S,
    kCommandPort,
#ifdef E2EE_SAMPLE_SECRETS
    true,
#else
    false,
#endif
    E2EE_SLEEP_S,
};
#if E2EE_AUTH_HMAC
const e2ee::DeviceBuffers buffers = {rx, sizeof(rx), opened, sizeof(opened), body, sizeof(body), plain, sizeof(plain), work, sizeof(work)};
#else
const e2ee::DeviceBuffers buffers = {rx, sizeof(rx), nullptr, 0, body, sizeof(body), plain, sizeof(plain), work, sizeof(work)};
#endif
#if E2EE_TRANSPORT_MQTT
e2ee::Device device(settings, buffers, flash, overMqtt, sysClock, hardwareRandom, serialLog, board, &rtc);
#else
e2ee::Device device(settings, buffers, flash, overHttp, sysClock, hardwareRandom, serialLog, board, &rtc);
#endif

void onCommand() {
  const String &text = server.arg("plain");
  const int code = device.on_push(text.c_str(), text.length());
  server.send(code, "application/json", code == 200 ? "{\"status\":\"OK\"}" : "{\"status\":\"NOK\"}");
}

}  // namespace

void setup() {
  Serial.begin(115200);
  Serial.println();
  pinMode(LED_BUILTIN, OUTPUT);
  digitalWrite(LED_BUILTIN, HIGH);
  if (!flash.begin()) {
    Serial.println("[e2ee] the flash layout has no room for the journal (16 KiB of filesystem region): use a layout with one, e.g. "
                   "board_build.ldscript = eagle.flash.4m2m.ld. Halting.");
    for (;;) delay(1000);
  }
#ifdef E2EE_DEVICE_ID
  snprintf(deviceId, sizeof(deviceId), "%s", E2EE_DEVICE_ID);
#else
  snprintf(deviceId, sizeof(deviceId), "%s", WiFi.macAddress().c_str());
#endif
#if E2EE_TRANSPORT_MQTT
  mqttClient.begin(overMqtt, E2EE_MQTT_HOST, E2EE_MQTT_PORT);
#endif
  if (!device.begin()) {
    for (;;) delay(1000);  // a setting in secrets.h that cannot work: said on serial, nothing to retry
  }
  // A sleeper is not reachable: no web server, commands come with the answer to its reading.
  if (E2EE_SLEEP_S == 0) {
    server.on("/command", HTTP_POST, onCommand);
    server.begin();
  }
}

void loop() {
  if (E2EE_SLEEP_S == 0) server.handleClient();
  device.loop();
  if (device.asleep()) {
    // GPIO16 (D0 on a D1 mini) wired to RST wakes the chip: the wake is a reset, setup() runs again.
    ESP.deepSleep(uint64_t(device.sleep_ms()) * 1000u);
  }
}
