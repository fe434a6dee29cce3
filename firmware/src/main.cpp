// esp-e2ee firmware for the ESP8266 (Arduino core). Only glue: the device's behaviour is e2ee::Device in lib/e2ee
// (host-tested against a fake backend and a fake broker); this file gives it the core's WiFi, HTTP client (or
// PubSubClient for MQTT), EEPROM, serial, clock, hardware RNG, sensor and LED, and calls it from setup() and loop().
#include <Arduino.h>
#include <EEPROM.h>
#include <ESP8266HTTPClient.h>
#include <ESP8266WebServer.h>
#include <ESP8266WiFi.h>
#include <PubSubClient.h>

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

namespace {

constexpr uint16_t kCommandPort = 80;

/// The core's EEPROM emulation (a RAM image of one flash sector, written back by commit()).
class EepromFlash : public e2ee::Flash {
 public:
  size_t size() const override { return e2ee::StorageLayout::kSize; }
  uint8_t read(size_t addr) const override { return EEPROM.read(int(addr)); }
  void write(size_t addr, uint8_t value) override { EEPROM.write(int(addr), value); }
  bool commit() override { return EEPROM.commit(); }
};

/// HTTPClient: answers are read only when they fit (their Content-Length is known and below the buffer).
class CoreHttp : public e2ee::Http {
 public:
  int exchange(const char *url, const char *body, size_t body_len, char *rx, size_t rx_size, size_t *rx_len) override {
    WiFiClient client;
    HTTPClient http;
    *rx_len = 0;
    if (!http.begin(client, url)) return HTTPC_ERROR_CONNECTION_FAILED;
    int code;
    if (body != nullptr) {
      http.addHeader("Content-Type", "application/json");
      code = http.POST(reinterpret_cast<const uint8_t *>(body), body_len);
    } else {
      code = http.GET();
    }
    if (code >= 200 && code < 300) {
      const int size = http.getSize();
      if (size < 0 || size_t(size) >= rx_size) {
        code = e2ee::kHttpTooLarge;
      } else {
        *rx_len = http.getStream().readBytes(rx, size_t(size));
        if (*rx_len != size_t(size)) code = e2ee::kHttpTruncated;
      }
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

class Board : public e2ee::Actions {
 public:
  bool network_up() override {
    if (WiFi.status() == WL_CONNECTED) return true;
    Serial.printf("[e2ee] WiFi: connecting to \"%s\"...\n", E2EE_WIFI_SSID);
    WiFi.mode(WIFI_STA);
    WiFi.begin(E2EE_WIFI_SSID, E2EE_WIFI_PASSWORD);
    for (int i = 0; i < 40 && WiFi.status() != WL_CONNECTED; i++) delay(500);
    if (WiFi.status() != WL_CONNECTED) {
      Serial.printf("[e2ee] WiFi: could not connect (status %d). Check E2EE_WIFI_SSID and E2EE_WIFI_PASSWORD in include/secrets.h;\n"
                    "      the ESP8266 only joins 2.4 GHz networks.\n", int(WiFi.status()));
      return false;
    }
    Serial.printf("[e2ee] WiFi: connected, IP %s\n", WiFi.localIP().toString().c_str());
    return true;
  }
  void address(char *ip, size_t ip_size, char *ssid, size_t ssid_size) override {
    snprintf(ip, ip_size, "%s", WiFi.localIP().toString().c_str());
    snprintf(ssid, ssid_size, "%s", WiFi.SSID().c_str());
  }
  bool sample(char *json, size_t size) override {
    const int n = snprintf(json, size, "{\"a0\":%d,\"heap\":%u,\"uptime\":%lu}", analogRead(A0), unsigned(ESP.getFreeHeap()),
                           static_cast<unsigned long>(::millis() / 1000));
    return n > 0 && size_t(n) < size;
  }
  void led(bool on) override { digitalWrite(LED_BUILTIN, on ? LOW : HIGH); }  // active low
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

EepromFlash flash;
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
};
#if E2EE_AUTH_HMAC
const e2ee::DeviceBuffers buffers = {rx, sizeof(rx), opened, sizeof(opened), body, sizeof(body), plain, sizeof(plain), work, sizeof(work)};
#else
const e2ee::DeviceBuffers buffers = {rx, sizeof(rx), nullptr, 0, body, sizeof(body), plain, sizeof(plain), work, sizeof(work)};
#endif
#if E2EE_TRANSPORT_MQTT
e2ee::Device device(settings, buffers, flash, overMqtt, sysClock, hardwareRandom, serialLog, board);
#else
e2ee::Device device(settings, buffers, flash, overHttp, sysClock, hardwareRandom, serialLog, board);
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
  EEPROM.begin(e2ee::StorageLayout::kSize);
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
  server.on("/command", HTTP_POST, onCommand);
  server.begin();
}

void loop() {
  server.handleClient();
  device.loop();
}
