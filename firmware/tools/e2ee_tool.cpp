// e2ee-tool: a host program built from lib/e2ee, for interop tests and as a stand-in device.
//
//   e2ee-tool seal    --key HEX --auth MODE --deviceid ID [--type T]  < plaintext   > body
//   e2ee-tool reading --key HEX --auth MODE --deviceid ID --seqn N --data JSON [--ack A]  > body
//   e2ee-tool open    --key HEX --auth MODE --deviceid ID [--type T]  < body        > plaintext
//   e2ee-tool command --key HEX --auth MODE --deviceid ID --last N   < body        > "SEQN <n> <cmd json>"
//   e2ee-tool post    --url http://127.0.0.1:PORT --key HEX --auth MODE --deviceid ID --seqn N --data JSON
//   e2ee-tool device  --url http://127.0.0.1:PORT --key HEX --auth MODE --deviceid ID --flash FILE --cycles N
//                     [--kv N] [--interval S] [--pause-ms MS]
//                     [--mqtt HOST:PORT --mqtt-user U --mqtt-password P [--mqtt-prefix esp-e2ee]]
//
// device runs the firmware's own e2ee::Device (lib/e2ee) against a real backend: FILE is its EEPROM (created
// erased), so each run is one boot; it runs N cycles, --pause-ms apart (the device's own waits are not slept; it
// keeps servicing its link in the pauses), and prints what the device says, and "[board] led on|off". With --mqtt
// it talks MQTT (libmosquitto, MQTT 3.1.1, persistent session, QoS 1) to a real broker instead of HTTP to --url.
//
// --type: reading (default), register, poll, command or config (bound into the MAC); --kv N adds the
// per-device key version to sealed bodies.
// Exit status: 0 ok, 1 rejected (the reason is on stderr), 2 usage or I/O error.
#include <mosquitto.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>
#include <cstring>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "e2ee.h"

using namespace e2ee;

namespace {

void os_random(uint8_t *out, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = getrandom(out + got, n - got, 0);
    if (r > 0) got += size_t(r);
  }
}

struct MemStore : CounterStore {
  uint64_t value;
  explicit MemStore(uint64_t v) : value(v) {}
  bool load(uint64_t *out) override {
    *out = value;
    return true;
  }
  bool save(uint64_t v) override {
    value = v;
    return true;
  }
};

int usage() {
  std::cerr << "usage: e2ee-tool seal|reading|open|command|post|device --key HEX --auth none|hmac-sha256 --deviceid ID [...]\n"
               "       e2ee-tool device ... --sleep S --wakes N --rtc FILE   a sleeping device, N wakes\n"
               "       e2ee-tool rekey-time [--n N]   the device's half of a rekey (X25519, HKDF), timed on this host\n";
  return 2;
}

std::string read_stdin() { return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()); }

bool build_body(const Keys &keys, MsgType type, const std::string &id, const std::string &plaintext, std::string *body) {
  std::vector<uint8_t> work(padded_len(plaintext.size()));
  std::vector<char> out(body_len(plaintext.size(), keys) + 1);
  size_t n = 0;
  if (!seal(keys, type, id.c_str(), reinterpret_cast<const uint8_t *>(plaintext.data()), plaintext.size(), os_random, work.data(), work.size(), out.data(), out.size(), &n)) return false;
  body->assign(out.data(), n);
  return true;
}

bool reading_body(const Keys &keys, const std::string &id, const std::string &data, uint64_t seqn, const std::string &ack, std::string *body) {
  std::vector<char> pt(data.size() + 70);
  size_t n = 0;
  const bool built = ack.empty() ? build_reading(data.c_str(), seqn, pt.data(), pt.size(), &n)
                                 : build_reading_ack(data.c_str(), seqn, std::stoull(ack), pt.data(), pt.size(), &n);
  if (!built) return false;
  return build_body(keys, MsgType::Reading, id, std::string(pt.data(), n), body);
}

bool parse_type(const std::string &name, MsgType *type) {
  static const struct { const char *name; MsgType type; } types[] = {
      {"reading", MsgType::Reading}, {"register", MsgType::Register}, {"poll", MsgType::Poll}, {"command", MsgType::Command}, {"config", MsgType::Config}};
  for (const auto &t : types) {
    if (name == t.name) {
      *type = t.type;
      return true;
    }
  }
  return false;
}

/// One HTTP/1.1 exchange with http://host:port: POST body to path, or GET when get. Returns the status code, or -1
/// when no connection was made; *response is the answer's body.
int http_request(const std::string &url, const std::string &path, const std::string *body, std::string *response) {
  const std::string prefix = "http://";
  if (url.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string hostport = url.substr(prefix.size());
  const size_t colon = hostport.rfind(':');
  const std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  const std::string port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  const int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    freeaddrinfo(res);
    if (fd >= 0) close(fd);
    return -1;
  }
  freeaddrinfo(res);
  const std::string req = (body ? "POST " : "GET ") + path + " HTTP/1.1\r\nHost: " + hostport +
                          (body ? "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body->size()) : std::string()) +
                          "\r\nConnection: close\r\n\r\n" + (body ? *body : std::string());
  size_t sent = 0;
  while (sent < req.size()) {
    const ssize_t w = write(fd, req.data() + sent, req.size() - sent);
    if (w <= 0) break;
    sent += size_t(w);
  }
  std::string all;
  char buf[1024];
  ssize_t r;
  while ((r = read(fd, buf, sizeof(buf))) > 0) all.append(buf, size_t(r));
  close(fd);
  int status = -1;
  if (sscanf(all.c_str(), "HTTP/1.%*d %d", &status) != 1) return -11;  // as the core's HTTPC_ERROR_READ_TIMEOUT
  const size_t split = all.find("\r\n\r\n");
  if (split == std::string::npos) return -11;
  // The body through the firmware's own reader, in the answer's framing.
  std::string head = all.substr(0, split);
  for (char &c : head) c = char(tolower(static_cast<unsigned char>(c)));
  const size_t cl = head.find("\r\ncontent-length:");
  const HttpBody::Framing framing = head.find("\r\ntransfer-encoding: chunked") != std::string::npos ? HttpBody::Framing::Chunked
                                    : cl != std::string::npos                                         ? HttpBody::Framing::Length
                                                                                                      : HttpBody::Framing::Close;
  static char body_buf[65536];
  HttpBody reader(framing, cl == std::string::npos ? 0 : size_t(std::strtoul(head.c_str() + cl + 17, nullptr, 10)), body_buf, sizeof(body_buf));
  reader.feed(all.data() + split + 4, all.size() - split - 4);
  size_t n = 0;
  const int read = reader.result(&n);
  if (read != 0) return read;
  if (response) response->assign(body_buf, n);
  return status;
}

int http_post(const std::string &url, const std::string &path, const std::string &body, std::string *response) {
  return http_request(url, path, &body, response);
}

/// MqttTransport's client on the host: libmosquitto, driven from the calling thread (no background thread), as
/// PubSubClient is on the device; but it publishes at QoS 1 and waits for the broker's PUBACK.
struct MosquittoClient : MqttClient {
  std::string host;
  int port;
  MqttTransport *transport = nullptr;
  mosquitto *m = nullptr;
  bool up = false;
  int connack = -1;
  bool subscribed = false;
  int acked_mid = -1;
  std::string error = "not connected";

  MosquittoClient(std::string h, int p) : host(std::move(h)), port(p) { mosquitto_lib_init(); }
  ~MosquittoClient() {
    if (m) {
      if (up) mosquitto_disconnect(m);
      mosquitto_destroy(m);
    }
    mosquitto_lib_cleanup();
  }

  /// Runs the network loop until done() or ms have passed.
  template <typename F>
  bool wait(F done, int ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!done() && std::chrono::steady_clock::now() < end) {
      if (mosquitto_loop(m, 20, 1) != MOSQ_ERR_SUCCESS) {
        up = false;
        return false;
      }
    }
    return done();
  }

  bool connect(const Login &login) override {
    if (m) mosquitto_destroy(m);
    up = subscribed = false;
    connack = -1;
    m = mosquitto_new(login.client_id, false, this);  // clean session off: the broker keeps what comes while away
    if (!m) return false;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_username_pw_set(m, login.user, login.password);
    mosquitto_will_set(m, login.will_topic, int(strlen(login.will_payload)), login.will_payload, 0, false);
    mosquitto_connect_callback_set(m, [](mosquitto *, void *self, int rc) { static_cast<MosquittoClient *>(self)->connack = rc; });
    mosquitto_disconnect_callback_set(m, [](mosquitto *, void *self, int) { static_cast<MosquittoClient *>(self)->up = false; });
    mosquitto_subscribe_callback_set(m, [](mosquitto *, void *self, int, int, const int *) { static_cast<MosquittoClient *>(self)->subscribed = true; });
    mosquitto_publish_callback_set(m, [](mosquitto *, void *self, int mid) { static_cast<MosquittoClient *>(self)->acked_mid = mid; });
    mosquitto_message_callback_set(m, [](mosquitto *, void *self, const mosquitto_message *msg) {
      auto *c = static_cast<MosquittoClient *>(self);
      if (c->transport) c->transport->on_message(msg->topic, static_cast<const char *>(msg->payload), size_t(msg->payloadlen));
    });
    const int rc = mosquitto_connect(m, host.c_str(), port, 15);
    if (rc != MOSQ_ERR_SUCCESS) {
      error = mosquitto_strerror(rc);
      return false;
    }
    if (!wait([&] { return connack >= 0; }, 5000) || connack != 0) {
      error = connack > 0 ? mosquitto_connack_string(connack) : "no CONNACK";
      return false;
    }
    up = true;
    if (mosquitto_subscribe(m, nullptr, login.subscribe, 1) != MOSQ_ERR_SUCCESS || !wait([&] { return subscribed; }, 5000)) {
      error = "subscribe failed";
      up = false;
      return false;
    }
    return true;
  }
  bool connected() override { return up; }
  bool publish(const char *topic, const char *payload, size_t len) override {
    int mid = 0;
    if (!up || mosquitto_publish(m, &mid, topic, int(len), payload, 1, false) != MOSQ_ERR_SUCCESS) return false;
    return wait([&] { return acked_mid == mid; }, 5000);
  }
  void poll(uint32_t wait_ms) override {
    if (m && up && mosquitto_loop(m, int(wait_ms), 1) != MOSQ_ERR_SUCCESS) up = false;
  }
  const char *error_text() override { return error.c_str(); }
};

/// e2ee::Device's interfaces on the host: sockets, a file as EEPROM, stdout.
struct HostHttp : Http {
  int exchange(const char *url, const char *body, size_t body_len, char *rx, size_t rx_size, size_t *rx_len) override {
    *rx_len = 0;
    const std::string u(url);
    const size_t slash = u.find('/', strlen("http://"));
    const std::string base = u.substr(0, slash), path = slash == std::string::npos ? "/" : u.substr(slash);
    const std::string payload = body ? std::string(body, body_len) : std::string();
    std::string answer;
    int code = http_request(base, path, body ? &payload : nullptr, &answer);
    if (code >= 200 && code < 300) {
      if (answer.size() >= rx_size) return kHttpTooLarge;
      memcpy(rx, answer.data(), answer.size());
      rx[answer.size()] = '\0';
      *rx_len = answer.size();
    }
    return code;
  }
  const char *error_text(int code) override { return code == -1 ? "connection failed" : code == -11 ? "read Timeout" : "error"; }
};

/// The journal's sectors in a file (created erased), written through at once: a run is one boot.
struct FileFlash : Flash {
  std::string path;
  std::vector<uint8_t> bytes;
  explicit FileFlash(std::string p) : path(std::move(p)), bytes(StorageLayout::kSectors * kSectorSize, 0xFF) {
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char *>(bytes.data()), std::streamsize(bytes.size()));
  }
  size_t sectors() const override { return StorageLayout::kSectors; }
  bool read(size_t addr, uint8_t *out, size_t len) override {
    if (addr + len > bytes.size()) return false;
    memcpy(out, bytes.data() + addr, len);
    return true;
  }
  bool write(size_t addr, const uint8_t *data, size_t len) override {
    if (addr % 4 || len % 4 || addr + len > bytes.size()) return false;
    for (size_t i = 0; i < len; i++) bytes[addr + i] &= data[i];  // NOR flash: bits only go from 1 to 0
    return save();
  }
  bool erase(size_t sector) override {
    if (sector >= sectors()) return false;
    memset(bytes.data() + sector * kSectorSize, 0xFF, kSectorSize);
    return save();
  }
  bool save() {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(bytes.data()), std::streamsize(bytes.size()));
    return bool(out.flush());
  }
};

/// RTC user memory in a file: what survives the tool's "deep sleep" between wakes (delete it for a power-on).
struct FileRtc : RtcMemory {
  std::string path;
  std::vector<uint8_t> mem = std::vector<uint8_t>(512, 0);
  int writes = 0;
  explicit FileRtc(std::string p) : path(std::move(p)) {
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char *>(mem.data()), std::streamsize(mem.size()));
  }
  bool read(size_t offset, uint8_t *out, size_t len) override {
    if (offset + len > mem.size()) return false;
    memcpy(out, mem.data() + offset, len);
    return true;
  }
  bool write(size_t offset, const uint8_t *data, size_t len) override {
    if (offset + len > mem.size()) return false;
    memcpy(mem.data() + offset, data, len);
    writes++;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(mem.data()), std::streamsize(mem.size()));
    return bool(out.flush());
  }
};

struct StdoutLog : LogSink {
  void line(const char *text) override { std::cout << text << std::endl; }
};

struct HostBoard : Actions {
  int samples = 0;
  bool network_up() override { return true; }
  void address(char *ip, size_t ip_size, char *ssid, size_t ssid_size) override {
    snprintf(ip, ip_size, "127.0.0.1");
    snprintf(ssid, ssid_size, "host");
  }
  bool sample(char *json, size_t size) override {
    snprintf(json, size, "{\"a0\":%d}", ++samples);
    return true;
  }
  void led(bool on) override { std::cout << "[board] led " << (on ? "on" : "off") << std::endl; }
};

/// Real time, plus the device's waits that the tool skips.
struct VirtualClock : Clock {
  const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  uint32_t skipped = 1;
  uint32_t millis() override {
    return skipped + uint32_t(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
  }
};

/// A Transport that counts what goes through it: the payload bytes of uplinks and of their answers (bodies over HTTP,
/// payloads over MQTT; the protocols' own headers are not counted).
struct CountingTransport : Transport {
  Transport &inner;
  long up = 0, down = 0;
  explicit CountingTransport(Transport &t) : inner(t) {}
  const char *begin(const char *id, Auth auth, Downlinks &sink) override { return inner.begin(id, auth, sink); }
  int exchange(const Uplink &u, char *rx, size_t rx_size, size_t *rx_len) override {
    const int code = inner.exchange(u, rx, rx_size, rx_len);
    up += long(u.len);
    down += long(*rx_len);
    return code;
  }
  void service() override { inner.service(); }
  void linger(uint32_t ms) override { inner.linger(ms); }
  const char *name() const override { return inner.name(); }
  const char *where() const override { return inner.where(); }
  const char *error_text(int code) override { return inner.error_text(code); }
};

/// A sleeping device: --wakes N wakes, each a boot of its own (a new Device, transport and connection, as after
/// ESP.deepSleep) on the same flash file and RTC file (--rtc; delete it for a power-on). The sleep itself is skipped
/// (--pause-ms of real time instead). After each wake: "[tool] wake N: exchanges E, flash writes W, erases X".
int run_sleeper(std::map<std::string, std::string> &opt, const DeviceSettings &settings) {
  static char rx[1536];
  static uint8_t opened[1536];
  static char body[576];
  static char plain[256];
  static uint8_t work[256 + 32];
  const DeviceBuffers buffers{rx, sizeof(rx), opened, sizeof(opened), body, sizeof(body), plain, sizeof(plain), work, sizeof(work)};
  const std::string url = opt["url"], broker = opt["mqtt"];
  const size_t colon = broker.rfind(':');
  const std::string mqtt_host = broker.substr(0, colon);
  const MqttSettings mqtt_settings{mqtt_host.c_str(), uint16_t(colon == std::string::npos ? 1883 : std::stoi(broker.substr(colon + 1))),
                                   opt["mqtt-user"].c_str(), opt["mqtt-password"].c_str(),
                                   opt.count("mqtt-prefix") ? opt["mqtt-prefix"].c_str() : "esp-e2ee"};
  const int wakes = opt.count("wakes") ? std::stoi(opt["wakes"]) : 1;
  const int pause = opt.count("pause-ms") ? std::stoi(opt["pause-ms"]) : 0;
  int total_exchanges = 0, total_writes = 0, total_erases = 0;
  for (int i = 0; i < wakes; i++) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause));
    FileFlash flash(opt["flash"]);
    FileRtc rtc(opt["rtc"]);
    HostHttp http;
    VirtualClock clock;
    StdoutLog log;
    HostBoard board;
    HttpTransport over_http(http, url.c_str());
    MosquittoClient mosq(mqtt_host, mqtt_settings.port);
    MqttTransport over_mqtt(mosq, clock, mqtt_settings);
    mosq.transport = &over_mqtt;
    CountingTransport transport(broker.empty() ? static_cast<Transport &>(over_http) : over_mqtt);
    Device device(settings, buffers, flash, transport, clock, os_random, log, board, &rtc);
    if (!device.begin()) return 1;
    for (int guard = 0; !device.asleep() && guard < 2000; guard++) {
      device.loop();
      if (!device.asleep()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!device.asleep()) return 1;
    total_exchanges += int(device.exchanges());
    total_writes += int(device.flash_writes());
    total_erases += int(device.flash_erases());
    std::cout << "[tool] wake " << i + 1 << ": exchanges " << device.exchanges() << ", flash writes " << device.flash_writes() << ", erases "
              << device.flash_erases() << ", sleep " << device.sleep_ms() << " ms, bytes up " << transport.up << ", down " << transport.down << std::endl;
    // The deep sleep: the connection goes with this wake's objects; the broker keeps the session (and what is
    // published to `down` meanwhile) for the next wake.
  }
  std::cout << "[tool] wakes " << wakes << ": exchanges " << total_exchanges << ", flash writes " << total_writes << ", erases " << total_erases << std::endl;
  return 0;
}

int run_device(std::map<std::string, std::string> &opt, Auth auth) {
  static char rx[1536];
  static uint8_t opened[1536];
  static char body[576];
  static char plain[256];
  static uint8_t work[256 + 32];
  const std::string id = opt["deviceid"], url = opt["url"], key = opt["key"];
  const uint32_t sleep_s = uint32_t(opt.count("sleep") ? std::stoul(opt["sleep"]) : 0);
  const DeviceSettings settings{id.c_str(), key.c_str(), auth, uint32_t(opt.count("kv") ? std::stoul(opt["kv"]) : 0),
                                uint32_t(opt.count("interval") ? std::stoul(opt["interval"]) : 10), 80, false, sleep_s};
  if (sleep_s > 0) return run_sleeper(opt, settings);
  const DeviceBuffers buffers{rx, sizeof(rx), opened, sizeof(opened), body, sizeof(body), plain, sizeof(plain), work, sizeof(work)};
  FileFlash flash(opt["flash"]);
  HostHttp http;
  VirtualClock clock;
  StdoutLog log;
  HostBoard board;
  HttpTransport over_http(http, url.c_str());
  const std::string broker = opt["mqtt"];
  const size_t colon = broker.rfind(':');
  const std::string mqtt_host = broker.substr(0, colon);
  const MqttSettings mqtt_settings{mqtt_host.c_str(), uint16_t(colon == std::string::npos ? 1883 : std::stoi(broker.substr(colon + 1))),
                                   opt["mqtt-user"].c_str(), opt["mqtt-password"].c_str(),
                                   opt.count("mqtt-prefix") ? opt["mqtt-prefix"].c_str() : "esp-e2ee"};
  MosquittoClient mosq(mqtt_host, mqtt_settings.port);
  MqttTransport over_mqtt(mosq, clock, mqtt_settings);
  mosq.transport = &over_mqtt;
  Transport &transport = broker.empty() ? static_cast<Transport &>(over_http) : over_mqtt;
  Device device(settings, buffers, flash, transport, clock, os_random, log, board);
  if (!device.begin()) return 1;
  const int cycles = opt.count("cycles") ? std::stoi(opt["cycles"]) : 1;
  const int pause = opt.count("pause-ms") ? std::stoi(opt["pause-ms"]) : 0;
  for (int i = 0; i < cycles; i++) {
    // In the pause the device keeps its link serviced (over MQTT a command may come, and is acknowledged at once).
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(i > 0 ? pause : 0);
    while (std::chrono::steady_clock::now() < end) {
      device.loop();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    clock.skipped += device.wait_ms();
    device.loop();
  }
  std::cout << "[tool] ack " << device.ack() << " kv " << device.key_version() << " registered " << device.registered() << std::endl;
  return 0;
}

/// Times rekey_derive (two X25519 scalar multiplications with BearSSL's m15, one HKDF) on this host.
int rekey_time(int n) {
  Keys current;
  keys_from_hex(&current, "000102030405060708090a0b0c0d0e0f", Auth::HmacSha256);
  uint8_t server[32], key[16], pub[32];
  os_random(server, sizeof(server));
  server[31] &= 0x7F;
  const auto start = std::chrono::steady_clock::now();
  int ok = 0;
  for (int i = 0; i < n; i++) ok += rekey_derive(current, "5C:CF:7F:AA:00:01", 1, server, os_random, key, pub);
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / n;
  std::cout << "rekey_derive: " << ok << "/" << n << " ok, " << us << " us each on this host\n";
  return ok == n ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  std::map<std::string, std::string> opt;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strncmp(argv[i], "--", 2) != 0) return usage();
    opt[argv[i] + 2] = argv[i + 1];
  }
  if (cmd == "rekey-time") return rekey_time(opt.count("n") ? std::stoi(opt["n"]) : 200);
  const Auth auth = opt["auth"] == "hmac-sha256" ? Auth::HmacSha256 : Auth::None;
  if (opt["auth"] != "none" && opt["auth"] != "hmac-sha256") return usage();
  if (cmd == "device") return run_device(opt, auth);
  Keys keys;
  if (!keys_from_hex(&keys, opt["key"].c_str(), auth)) {
    std::cerr << "the key must be 32, 48 or 64 hex digits\n";
    return 2;
  }
  const std::string id = opt["deviceid"];
  if (opt.count("kv")) keys.kv = int64_t(std::stoull(opt["kv"]));
  MsgType type = MsgType::Reading;
  if (opt.count("type") && !parse_type(opt["type"], &type)) return usage();

  if (cmd == "seal") {
    std::string body;
    if (!build_body(keys, type, id, read_stdin(), &body)) return 2;
    std::cout << body;
    return 0;
  }
  if (cmd == "reading" || cmd == "post") {
    std::string body;
    if (!reading_body(keys, id, opt.count("data") ? opt["data"] : "{}", std::stoull(opt["seqn"]), opt.count("ack") ? opt["ack"] : "", &body)) return 2;
    if (cmd == "reading") {
      std::cout << body;
      return 0;
    }
    std::string response;
    const int status = http_post(opt["url"], "/api/devices/" + id + "/readings", body, &response);
    std::cout << status << " " << response << "\n";
    return status == 200 ? 0 : 1;
  }
  if (cmd == "open" || cmd == "command") {
    const std::string body = read_stdin();
    std::vector<uint8_t> out(body.size() + 1);
    if (cmd == "open") {
      size_t n = 0;
      const OpenStatus st = open(keys, type, id.c_str(), body.data(), body.size(), out.data(), out.size(), &n);
      if (st != OpenStatus::Ok) {
        std::cerr << (st == OpenStatus::BadBody ? "bad body\n" : "rejected\n");
        return 1;
      }
      std::cout.write(reinterpret_cast<const char *>(out.data()), std::streamsize(n));
      return 0;
    }
    MemStore store(opt.count("last") ? std::stoull(opt["last"]) : 0);
    DownlinkGuard guard(store);
    guard.begin();
    Command c;
    const CommandStatus st = guard.accept(keys, id.c_str(), body.data(), body.size(), out.data(), out.size(), &c);
    static const char *names[] = {"ok", "bad body", "rejected", "bad command", "replay", "store failed", "rekey"};
    if (st == CommandStatus::Rekey) {
      std::cout << "SEQN " << c.seqn << " rekey " << c.rekey_kv << "\n";
      return 0;
    }
    if (st != CommandStatus::Ok) {
      std::cerr << names[int(st)] << "\n";
      return 1;
    }
    std::cout << "SEQN " << c.seqn << " " << std::string(c.cmd.ptr, c.cmd.len) << "\n";
    return 0;
  }
  return usage();
}
