// Host tests of the device's behaviour (e2ee::Device), driven through its interfaces against a fake backend that
// speaks the real wire format: boots on damaged storage, a reboot at every step, faults, and an owner's mistakes.
#if __has_include(<doctest.h>)
#include <doctest.h>
#else
#include <doctest/doctest.h>
#endif

#include <fstream>
#include <algorithm>
#include <cstdlib>
#include <map>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "e2ee.h"
#include "fake_backend.h"
#include "support.h"

using namespace e2ee;

namespace {

const char *const kId = "5C:CF:7F:01:02:03";

/// Every line any device said in these tests, for the check of firmware/README.md.
std::vector<std::string> &all_lines() {
  static std::vector<std::string> lines;
  return lines;
}

struct Lines : LogSink {
  std::vector<std::string> lines;
  void line(const char *text) override {
    lines.push_back(text);
    all_lines().push_back(text);
  }
  size_t count(const std::string &part) const {
    size_t n = 0;
    for (const auto &l : lines) n += l.find(part) != std::string::npos;
    return n;
  }
  bool has(const std::string &part) const { return count(part) > 0; }
  std::string all() const {
    std::string s;
    for (const auto &l : lines) s += l + "\n";
    return s;
  }
};

struct TestClock : Clock {
  uint32_t now = 1000;
  uint32_t millis() override { return now; }
};

struct Board : Actions {
  bool network = true;
  int led_changes = 0;
  bool led_on = false;
  int samples = 0;
  std::string ssid = "lab";
  bool network_up() override { return network; }
  void address(char *ip, size_t ip_size, char *ssid_out, size_t ssid_size) override {
    snprintf(ip, ip_size, "192.168.1.50");
    snprintf(ssid_out, ssid_size, "%s", ssid.c_str());
  }
  bool sample(char *json, size_t size) override {
    snprintf(json, size, "{\"a0\":%d}", ++samples);
    return true;
  }
  void led(bool on) override {
    led_on = on;
    led_changes++;
  }
};

/// One device with the sketch's buffer sizes, its flash, a clock, a board and a backend; reboot() starts it again
/// on the same flash (what survives a power cut) and the same backend.
struct Rig {
  MemFlash flash;
  MemRtc rtc;
  FakeBackend backend;
  TestClock clock;
  Lines log;
  Board board;
  char rx[1536];
  uint8_t opened[1536];
  char body[576];  // a 256-byte plaintext sealed, with kv and a rekey's epk
  char plain[256];
  uint8_t work[256 + 32];
  std::string url = "http://192.168.1.10:1880";
  std::string key_hex = test_key_hex(0);
  DeviceSettings settings{};
  DeviceBuffers buffers{};
  /// MQTT instead of HTTP: the same backend behind a broker.
  bool mqtt = false;
  FakeBroker broker;
  MqttSettings mqtt_settings{"192.168.1.10", 1883, "5C%3ACF%3A7F%3A01%3A02%3A03", "0123456789abcdef0123456789abcdef", "esp-e2ee"};
  std::unique_ptr<HttpTransport> http;
  std::unique_ptr<MqttTransport> mqtt_link;
  std::unique_ptr<Device> dev;
  int boots = 0;

  explicit Rig(bool hmac = true, uint8_t fill = 0xFF, bool over_mqtt = false)
      : flash(StorageLayout::kSectors, fill), backend(kId, hmac), mqtt(over_mqtt), broker(backend, clock, &clock.now) {
    settings = DeviceSettings{kId, nullptr, hmac ? Auth::HmacSha256 : Auth::None, 0, 10, 80, false, 0};
    buffers = DeviceBuffers{rx, sizeof(rx), opened, sizeof(opened), body, sizeof(body), plain, sizeof(plain), work, sizeof(work)};
    backend.power = &flash;
    if (!mqtt) backend.push = nullptr;
  }

  /// The transport the device boots with.
  Transport &transport() {
    if (mqtt) return *mqtt_link;
    return *http;
  }

  bool boot() {
    flash.reboot();
    settings.key_hex = key_hex.c_str();
    // A reboot drops the connection; the broker keeps the session.
    broker.up = false;
    http.reset(new HttpTransport(backend, url.c_str()));
    mqtt_link.reset(new MqttTransport(broker, clock, mqtt_settings));
    broker.transport = mqtt_link.get();
    dev.reset(new Device(settings, buffers, flash, transport(), clock, test_random, log, board, &rtc));
    boots++;
    return dev->begin();
  }

  /// One cycle: the clock moves on to when the device is due.
  void cycle() {
    clock.now += dev->wait_ms();
    dev->loop();
  }

  /// A sleeper's wake: a reset (boot on the same flash and RTC memory), loop() until it is asleep, then the sleep.
  /// False when the power went during the wake: then the RTC memory is lost too.
  bool wake() {
    if (!boot()) return false;
    flash_writes_before = flash.writes;
    for (int i = 0; i < 400 && !dev->asleep() && !flash.power_lost; i++) {
      dev->loop();
      clock.now += 25;
    }
    if (flash.power_lost) {
      rtc.power_loss(uint32_t(boots));
      return false;
    }
    REQUIRE(dev->asleep());
    clock.now += dev->sleep_ms();
    return true;
  }
  int flash_writes_before = 0;

  /// Cycles until done() (at most max); false when it never was.
  template <typename F>
  bool until(F done, int max = 40) {
    for (int i = 0; i < max; i++) {
      if (done()) return true;
      cycle();
    }
    return done();
  }
};

}  // namespace

TEST_CASE("device: registers, reads, polls and applies its config; a command runs once and is acknowledged (hmac)") {
  Rig r;
  REQUIRE(r.boot());
  CHECK(r.log.has("storage: journal erased"));
  CHECK(r.log.has("device 5C:CF:7F:01:02:03, auth hmac-sha256, backend http://192.168.1.10:1880"));
  r.backend.data = "{\"interval\":7,\"led\":true}";
  r.cycle();
  CHECK(r.backend.registered);
  CHECK(r.backend.rxbuf == 1535);  // declared: the answers stay within the buffer
  CHECK(r.log.has("register as 5C:CF:7F:01:02:03: HTTP 201"));
  CHECK(r.log.has("config 1: interval 7 s"));
  CHECK(r.dev->interval_s() == 7);
  CHECK(r.board.led_on);
  CHECK(r.backend.readings.size() == 1);
  CHECK(r.backend.accepted == std::vector<uint64_t>{0, 1, 2});  // register, reading, poll: one sequence
  CHECK(r.dev->wait_ms() == 7000);
  const uint64_t m = r.backend.queue_command("{\"led\":false}");
  r.cycle();
  CHECK(r.log.count("command 1 via poll: {\"led\":false}") == 1);
  CHECK_FALSE(r.board.led_on);
  CHECK(r.dev->ack() == m);
  CHECK(r.backend.queue.size() == 1);  // delivered, not yet acknowledged
  r.cycle();                           // the next uplink carries the ack
  CHECK(r.backend.queue.empty());
  CHECK(r.log.count("command 1 via") == 1);  // offered again once at most, and then dropped as a replay
  CHECK(r.backend.refused == 0);
  // The config changes: applied once.
  r.backend.cfgsn = 2;
  r.backend.data = "{\"interval\":3}";
  r.cycle();
  CHECK(r.log.has("config 2: interval 3 s"));
  CHECK(r.dev->wait_ms() == 3000);
}

TEST_CASE("device over MQTT: login, Last Will and topics; answers on down; a command sent while away arrives and is acknowledged at once") {
  Rig r(true, 0xFF, true);
  REQUIRE(r.boot());
  CHECK(r.log.has("device 5C:CF:7F:01:02:03, auth hmac-sha256, backend mqtt://192.168.1.10:1883"));
  CHECK(r.broker.connects == 0);  // connects when an uplink needs it
  r.backend.data = "{\"interval\":7}";
  r.cycle();
  INFO(r.log.all());
  CHECK(r.broker.connects == 1);
  CHECK(r.broker.user == "5C%3ACF%3A7F%3A01%3A02%3A03");
  CHECK(r.broker.password == "0123456789abcdef0123456789abcdef");
  CHECK(r.broker.subscribed == "esp-e2ee/5C:CF:7F:01:02:03/down");
  CHECK(r.broker.will_topic == "esp-e2ee/5C:CF:7F:01:02:03/status");
  CHECK(r.broker.will_payload == "{\"online\":false}");
  CHECK(r.broker.statuses == std::vector<std::string>{"{\"online\":true}"});
  CHECK(r.backend.registered);
  CHECK(r.log.has("register as 5C:CF:7F:01:02:03: MQTT 200"));
  CHECK(r.log.has("reading SEQN 1: MQTT 202"));
  CHECK(r.log.has("config 1: interval 7 s"));
  CHECK(r.backend.accepted == std::vector<uint64_t>{0, 1, 2});
  CHECK(r.backend.paths == std::vector<std::string>{"/api/devices/5C:CF:7F:01:02:03", "/api/devices/5C:CF:7F:01:02:03/readings",
                                                   "/api/devices/5C:CF:7F:01:02:03/poll"});

  // Away (the connection dropped): the broker keeps the command; the next cycle reconnects and gets it.
  r.broker.up = false;
  const uint64_t m = r.backend.queue_command("{\"led\":true}");
  REQUIRE(r.broker.session.size() == 1);
  r.dev->loop();  // not due, not connected: nothing
  CHECK_FALSE(r.board.led_on);
  r.cycle();
  CHECK(r.broker.connects == 2);
  CHECK(r.log.count("command 1 via mqtt: {\"led\":true}") == 1);
  CHECK(r.board.led_on);
  CHECK(r.dev->ack() == m);
  CHECK(r.backend.queue.empty());  // the cycle's poll carried the ack
  CHECK(r.log.count("command 1 via") == 1);  // offered again in the poll's answer: dropped as done

  // Connected, between cycles: the command is taken at once and acknowledged by a poll right away.
  const int calls = r.backend.calls;
  r.backend.queue_command("{\"led\":false}");
  r.dev->loop();
  CHECK(r.log.count("command 2 via mqtt: {\"led\":false}") == 1);
  CHECK_FALSE(r.board.led_on);
  CHECK(r.backend.calls == calls + 1);
  CHECK(r.backend.queue.empty());

  // A QoS 1 duplicate of a reading reaches the backend twice: stored once.
  const size_t readings = r.backend.readings.size();
  r.broker.duplicate_next = 1;
  r.cycle();
  CHECK(r.backend.readings.size() == readings + 1);
  CHECK(r.broker.duplicates_refused == 1);
  CHECK(r.backend.refused == 1);
}

TEST_CASE("device over MQTT: what is not ours is dropped; no answer means a backoff; the broker down holds no SEQN") {
  Rig r(true, 0xFF, true);
  REQUIRE(r.boot());
  r.cycle();
  REQUIRE(r.backend.registered);
  // Injected on down: a recorded config answer, one for another device, a command under another key, garbage.
  FakeBackend other("5C:CF:7F:09:09:09", true);
  const std::string recorded = r.backend.seal(r.backend.keys_of(0), MsgType::Config, "{\"re\":2,\"cfgsn\":9,\"data\":{\"led\":true}}");
  r.broker.session.push_back(recorded);
  r.broker.session.push_back(other.seal(other.keys_of(0), MsgType::Config, "{\"re\":3,\"cfgsn\":9,\"data\":{\"led\":true}}"));
  r.broker.session.push_back(other.seal(other.keys_of(0), MsgType::Command, "{\"cmd\":{\"led\":true},\"SEQN\":1}"));
  r.broker.session.push_back("not json");
  r.cycle();
  INFO(r.log.all());
  CHECK_FALSE(r.board.led_on);
  CHECK(r.dev->cfgsn() == 1);
  CHECK(r.dev->ack() == 0);
  CHECK(r.log.count("command via mqtt refused: rejected") == 2);  // the other device's answer and command
  CHECK(r.log.count("command via mqtt refused: bad body") == 1);
  // The backend refuses a poll and answers nothing over MQTT: the device waits out its answer, then backs off.
  r.backend.busy = 2;  // the reading (which gets no answer anyway) and the poll
  r.cycle();
  CHECK(r.log.has("config poll: MQTT -111 (no answer on the down topic): is mqtt://192.168.1.10:1883 up and reachable?"));
  CHECK(r.log.has("backend unavailable: next try in"));
  CHECK(r.dev->wait_ms() > 10000);
  // The broker down: nothing published, so the SEQN is used by the next uplink.
  r.broker.up = false;
  r.broker.refuse_connects = 1;
  const size_t before = r.backend.accepted.size();
  r.cycle();
  unsigned long long unsent = 0;
  for (const auto &l : r.log.lines) {
    if (l.find(": MQTT -1 (connection refused): is mqtt://192.168.1.10:1883 up and reachable?") == std::string::npos) continue;
    sscanf(l.c_str(), "[e2ee] reading SEQN %llu: MQTT -1 (connection refused): is mqtt://192.168.1.10:1883 up and reachable?", &unsent);
  }
  REQUIRE(unsent > 0);
  CHECK(r.backend.accepted.size() == before);
  r.cycle();
  REQUIRE(r.backend.accepted.size() > before);
  CHECK(r.backend.accepted[before] == unsent);
}

TEST_CASE("device over MQTT: a rekey that arrives while an answer is awaited is taken from that answer, after it verified") {
  Rig r(true, 0xFF, true);
  REQUIRE(r.boot());
  r.cycle();
  REQUIRE(r.backend.registered);
  r.broker.up = false;  // away: the rekey waits in the session, and arrives just before the poll's answer
  const uint64_t m = r.backend.queue_rekey();
  r.cycle();
  INFO(r.log.all());
  CHECK(r.log.count("command 1 via poll: rekey to key version 1") == 1);
  CHECK(r.log.count("command 1 via mqtt") == 0);
  CHECK_FALSE(r.log.has("answer refused"));
  CHECK(r.dev->ack() == m);
  CHECK(r.dev->key_version() == 1);
  r.cycle();
  CHECK(r.backend.keyver == 1);
  CHECK(r.backend.pending == -1);
  CHECK(r.backend.refused == 0);
}

TEST_CASE("device over MQTT: settings that cannot work halt the boot with one sentence") {
  SUBCASE("plain mode") {
    Rig r(false, 0xFF, true);
    CHECK_FALSE(r.boot());
    CHECK(r.log.has("MQTT needs E2EE_AUTH_HMAC 1 (the plain mode is HTTP only). Halting."));
  }
  SUBCASE("a prefix with a wildcard") {
    Rig r(true, 0xFF, true);
    r.mqtt_settings.prefix = "esp/#";
    CHECK_FALSE(r.boot());
    CHECK(r.log.has("E2EE_MQTT_PREFIX must be 1 to 48 characters, without '+', '#' or a '/' at either end. Halting."));
  }
  SUBCASE("no broker") {
    Rig r(true, 0xFF, true);
    r.mqtt_settings.host = "";
    CHECK_FALSE(r.boot());
    CHECK(r.log.has("E2EE_MQTT_HOST and E2EE_MQTT_PORT must name the broker. Halting."));
  }
}

TEST_CASE("device: plain mode (E2EE_AUTH_HMAC 0) registers and polls in plain JSON, sends sealed readings, runs commands") {
  Rig r(false);
  REQUIRE(r.boot());
  r.cycle();
  CHECK(r.backend.registered);
  CHECK(r.backend.rxbuf == 1535);
  CHECK(r.log.has("device 5C:CF:7F:01:02:03, auth none"));
  CHECK(r.backend.readings.size() == 1);
  CHECK(r.backend.readings[0] == "{\"data\":{\"a0\":1},\"SEQN\":0}");  // no ack in plain mode
  r.backend.queue_command("{\"interval\":4}");
  r.cycle();
  INFO(r.log.all());
  CHECK(r.log.has("command 1 via poll: {\"interval\":4}"));
  CHECK(r.dev->interval_s() == 4);
  CHECK(r.backend.paths[0] == "/api/devices/5C:CF:7F:01:02:03");
}

TEST_CASE("device: several waiting commands come over several polls within the buffer, in order, each once") {
  Rig r;
  REQUIRE(r.boot());
  r.cycle();
  for (int i = 0; i < 12; i++) r.backend.queue_command("{\"interval\":" + std::to_string(10 + i) + ",\"pad\":\"" + std::string(100, 'x') + "\"}");
  REQUIRE(r.until([&] { return r.backend.queue.empty(); }, 10));
  for (int i = 1; i <= 12; i++) CHECK(r.log.count("command " + std::to_string(i) + " via poll: ") == 1);
  CHECK(r.dev->interval_s() == 21);
  CHECK(r.backend.refused == 0);
}

TEST_CASE("device: a rekey (X25519) stores the key before acknowledging it; the server moves on at the first message under it") {
  Rig r;
  REQUIRE(r.boot());
  r.cycle();
  const uint64_t m = r.backend.queue_rekey();
  CHECK(r.backend.queue_command("{\"led\":true}") == 0);  // refused while the rekey is pending
  r.cycle();
  CHECK(r.log.has("command 1 via poll: rekey to key version 1"));
  CHECK(r.dev->key_version() == 1);
  CHECK(r.dev->ack() == m);
  // The key the device made is not the one the master would give for version 1.
  CHECK(r.backend.with_epk == 0);
  r.cycle();
  CHECK(r.backend.keyver == 1);
  CHECK(r.backend.pending == -1);
  CHECK(r.backend.rekeyed.count(1) == 1);
  CHECK(r.backend.rekeyed[1] != std::string(16, char(2)));
  CHECK(r.backend.queue.empty());
  // The reading and the poll of that cycle carried the public key; the poll's answer (under the new key) ends that.
  CHECK(r.backend.with_epk == 2);
  r.cycle();
  CHECK(r.backend.with_epk == 2);
  const uint64_t c = r.backend.queue_command("{\"led\":true}");
  REQUIRE(c == 2);
  r.cycle();
  CHECK(r.log.has("command 2 via poll: {\"led\":true}"));
  // From the next boot on, the key from flash; its public key goes again until an answer under it.
  REQUIRE(r.boot());
  CHECK(r.log.has("using the key of version 1 from a rekey"));
  CHECK(r.dev->key_version() == 1);
  const size_t before = r.backend.readings.size();
  r.cycle();
  CHECK(r.backend.readings.size() == before + 1);
  // (The registration at boot carried it; its answer, sealed under the new key, ended it.)
  CHECK(r.backend.with_epk == 3);
  CHECK(r.backend.refused == 0);
}

/// How many times command m ran (`what` its text, or how it starts), whichever way it came: a poll or MQTT.
size_t ran(const Lines &log, uint64_t m, const std::string &what) {
  const std::string n = std::to_string(m);
  return log.count("command " + n + " via poll: " + what) + log.count("command " + n + " via mqtt: " + what);
}

/// Both transports, as doctest subcases: the same scenario over HTTP and over MQTT.
#define GENERATE_TRANSPORT() \
  [] {                                    \
    bool over_mqtt = false;               \
    SUBCASE("over HTTP") {}               \
    SUBCASE("over MQTT") { over_mqtt = true; } \
    return over_mqtt;                     \
  }()

/// What a life with commands 1 (first), 2 (a rekey) and 3 (third) must end with whatever the power cuts: nothing
/// refused, each command run at most once (exactly once unless the power went right after a whole write: the command's
/// SEQN is stored before it is acted on, so a cut in between loses that command rather than run it twice, by design,
/// against replays), device and backend on the new key, uplinks in order. Returns how often the third command ran.
static size_t ran_once(Rig &r, const char *first, const char *third) {
  INFO(r.log.all());
  CHECK(r.backend.refused == 0);
  const size_t expected = r.flash.cut_completed ? 0 : 1;
  const size_t c1 = ran(r.log, 1, first);
  const size_t c2 = ran(r.log, 2, "rekey to key version 1") + r.log.count("command 2: rekey completed at boot");
  const size_t c3 = ran(r.log, 3, third);
  CHECK(c1 <= 1);
  CHECK(c2 <= 1);
  CHECK(c3 <= 1);
  CHECK(c1 + c2 + c3 >= 2 + expected);
  CHECK(r.dev->key_version() == 1);
  CHECK(r.backend.keyver == 1);
  for (size_t i = 1; i < r.backend.accepted.size(); i++) CHECK(r.backend.accepted[i] > r.backend.accepted[i - 1]);
  return c3;
}

/// The whole life of a device: register, readings, a command, a rekey, a command under the new key. Runs with a power
/// cut injected by `inject` (which may do nothing), reboots after each cut, and checks what must hold whatever the
/// cut: no uplink refused (no SEQN used twice, never a key the backend does not hold), each command run exactly once,
/// all acknowledged, device and backend on the same key.
static void lifecycle(Rig &r) {
  REQUIRE(r.boot());
  auto step = [&](const std::function<bool()> &done) {
    for (int i = 0; i < 60 && !done(); i++) {
      r.cycle();
      if (r.flash.power_lost) REQUIRE(r.boot());
    }
    REQUIRE(done());
  };
  step([&] { return r.backend.registered && r.backend.readings.size() >= 2; });
  r.backend.queue_command("{\"interval\":9}");
  step([&] { return r.backend.queue.empty(); });
  r.backend.queue_rekey();
  step([&] { return r.backend.queue.empty() && r.backend.pending == -1; });
  r.backend.queue_command("{\"led\":true}");
  step([&] { return r.backend.queue.empty(); });
  const size_t before = r.backend.readings.size();
  step([&] { return r.backend.readings.size() >= before + 2; });
  const size_t c3 = ran_once(r, "{\"interval\":9}", "{\"led\":true}");
  CHECK(r.board.led_on == (c3 == 1));
}

TEST_CASE("device: a reboot at every exchange of the lifecycle, before the request arrives and after it was processed") {
  const bool mqtt = GENERATE_TRANSPORT();
  Rig clean(true, 0xFF, mqtt);
  lifecycle(clean);
  const long exchanges = clean.backend.calls;
  REQUIRE(exchanges > 10);
  for (int after = 0; after <= 1; after++) {
    for (long k = 0; k < exchanges; k++) {
      CAPTURE(k);
      CAPTURE(after);
      Rig r(true, 0xFF, mqtt);
      r.backend.cut_at_call = k;
      r.backend.cut_after_processing = after == 1;
      lifecycle(r);
      CHECK(r.boots == 2);
    }
  }
}

TEST_CASE("device: answers chunked or up to the close (a proxy that re-frames them) work as with Content-Length") {
  for (char framing : {'c', 'x'}) {
    CAPTURE(framing);
    Rig r;
    r.backend.framing = framing;
    lifecycle(r);
    CHECK(r.boots == 1);
    CHECK(r.log.lines.end() == std::find_if(r.log.lines.begin(), r.log.lines.end(), [](const std::string &l) { return l.find("answer") != std::string::npos; }));
    // Larger than the buffer: refused whole (the rest is read and dropped), applies nothing; cut short: refused too.
    r.backend.queue_command("{\"led\":false}");
    r.backend.tamper = [](std::string &a) { a += std::string(2000, ' '); };
    r.cycle();
    CHECK(r.log.has("config poll: answer larger than the 1535-byte buffer"));
    r.backend.tamper = nullptr;
    r.backend.truncate_next = true;
    r.cycle();
    // (The next answer is the reading's: chunked, its end is missing; up to the close, nothing says it was longer.)
    if (framing == 'c') CHECK(r.log.has(": answer cut short"));
    r.cycle();
    CHECK(ran(r.log, 4, "{\"led\":false}") == 1);
    CHECK(r.backend.refused == 0);
  }
}

TEST_CASE("device: a WiFi outage of many cycles: loop() never waits, POST /command is answered, nothing is reserved; then back") {
  Rig r;
  REQUIRE(r.boot());
  r.cycle();
  REQUIRE(r.backend.registered);
  r.board.network = false;
  const int calls = r.backend.calls;
  const int writes = r.flash.writes;
  const size_t accepted = r.backend.accepted.size();
  Keys k;
  REQUIRE(keys_from_hex(&k, r.key_hex.c_str(), Auth::HmacSha256));
  for (int i = 0; i < 200; i++) {
    r.cycle();
    CHECK(r.dev->wait_ms() == 10000);  // the schedule keeps its interval: no backoff for a local outage
    // Between cycles the sketch's web server runs: a pushed command is taken at once.
    if (i == 100) {
      const std::string cmd = seal_text(k, MsgType::Command, kId, "{\"cmd\":{\"led\":true},\"SEQN\":1}");
      CHECK(r.dev->on_push(cmd.data(), cmd.size()) == 200);
    }
  }
  CHECK(r.board.led_on);
  CHECK(r.backend.calls == calls);
  CHECK(r.backend.accepted.size() == accepted);
  CHECK(r.flash.writes == writes + 1);  // the pushed command's ack, nothing else
  r.board.network = true;
  r.cycle();
  CHECK(r.backend.accepted.size() == accepted + 2);
  CHECK(r.backend.accepted[accepted] == r.backend.accepted[accepted - 1] + 1);  // no number spent by the outage
  CHECK(r.backend.refused == 0);
}

TEST_CASE("device: a power cut in the middle of every flash write of the lifecycle (a torn write)") {
  const bool mqtt = GENERATE_TRANSPORT();
  Rig clean(true, 0xFF, mqtt);
  lifecycle(clean);
  const long commits = clean.flash.attempts;
  REQUIRE(commits > 4);
  for (long j = 0; j < commits; j++) {
    // Nothing written, a few bytes, most of a record: the record of a slot pair copy is 16 to 44 bytes.
    for (long part : {0L, 3L, 11L, 19L}) {
      CAPTURE(j);
      CAPTURE(part);
      Rig r(true, 0xFF, mqtt);
      r.flash.cut_at = j;
      r.flash.cut_bytes = part;
      lifecycle(r);
      CHECK(r.boots == 2);
    }
  }
}

TEST_CASE("device: boots on erased, zeroed and corrupted storage; says so once; the next boot is silent") {
  SUBCASE("erased") {
    Rig r;
    REQUIRE(r.boot());
    CHECK(r.log.count("storage: journal erased: SEQN restarts at 0") == 1);
    r.log.lines.clear();
    REQUIRE(r.boot());
    CHECK_FALSE(r.log.has("storage:"));
  }
  SUBCASE("zeroed") {
    Rig r(true, 0x00);
    REQUIRE(r.boot());
    CHECK(r.log.has("storage: journal zeroed: SEQN restarts at 0"));
    r.cycle();
    CHECK(r.backend.registered);
    r.log.lines.clear();
    REQUIRE(r.boot());
    CHECK_FALSE(r.log.has("storage:"));
  }
  SUBCASE("corrupted after use: the backend refuses the restarted counter until the operator's reset") {
    Rig r;
    REQUIRE(r.boot());
    for (int i = 0; i < 3; i++) r.cycle();
    REQUIRE(r.backend.refused == 0);
    for (auto &b : r.flash.bytes) b = uint8_t(b * 7 + 1);  // garbage in every sector
    REQUIRE(r.boot());
    CHECK(r.log.has("storage: journal corrupt: SEQN restarts at 0 (if refused: POST /api/devices/<id>/reset), commands are accepted from SEQN 1 again"));
    for (int i = 0; i < 5; i++) r.cycle();
    CHECK(r.backend.refused >= 5);
    CHECK(r.log.count("5 refused in a row (HTTP 400)") == 1);
    CHECK(r.log.has("POST /api/devices/5C:CF:7F:01:02:03/reset"));
    CHECK(r.dev->wait_ms() == 10000);  // refusals are not an outage: no backoff
    r.backend.reset_counter();
    r.cycle();
    CHECK(r.backend.registered);
    CHECK(r.log.has("register as 5C:CF:7F:01:02:03: HTTP 200"));
  }
}

TEST_CASE("device: a backend down for long: bounded backoff with jitter, one SEQN held, no flash written, then back") {
  Rig r;
  REQUIRE(r.boot());
  r.cycle();
  REQUIRE(r.backend.registered);
  const int commits = r.flash.writes;
  const size_t accepted = r.backend.accepted.size();
  r.backend.down = 1000;
  uint32_t longest = 0;
  std::vector<uint32_t> waits;
  for (int i = 0; i < 60; i++) {
    r.cycle();
    waits.push_back(r.dev->wait_ms());
    longest = std::max(longest, r.dev->wait_ms());
  }
  CHECK(waits[0] >= 20000);
  CHECK(waits[0] < 20000 + 20000 / 8 + 1);  // doubled once, plus up to 1/8
  CHECK(waits[1] >= 40000);
  CHECK(longest >= Device::kBackoffMaxS * 1000);
  CHECK(longest <= Device::kBackoffMaxS * 1000 + Device::kBackoffMaxS * 1000 / 8);
  CHECK(std::set<uint32_t>(waits.begin() + 10, waits.end()).size() > 1);  // jittered
  CHECK(r.flash.writes == commits);  // the unsent number is used again: nothing reserved, nothing written
  CHECK(r.log.has("HTTP -1 (connection failed): is http://192.168.1.10:1880 up and reachable?"));
  CHECK(r.log.has("backend unavailable: next try in"));
  r.backend.down = 0;
  r.cycle();
  CHECK(r.dev->wait_ms() == 10000);
  CHECK(r.backend.accepted.size() == accepted + 2);
  CHECK(r.backend.accepted[accepted] == r.backend.accepted[accepted - 1] + 1);  // no number skipped by the outage
  CHECK(r.backend.refused == 0);
}

TEST_CASE("device: a busy backend (503, 429) backs off; the network down reserves nothing") {
  Rig r;
  REQUIRE(r.boot());
  r.cycle();
  r.backend.status = 503;
  r.cycle();
  CHECK(r.dev->wait_ms() >= 20000);
  CHECK(r.log.has("reading SEQN 3: HTTP 503"));
  r.backend.status = 429;
  r.cycle();
  CHECK(r.dev->wait_ms() >= 40000);
  r.backend.status = 0;
  r.board.network = false;
  const int calls = r.backend.calls;
  const int commits = r.flash.writes;
  for (int i = 0; i < 5; i++) r.cycle();
  CHECK(r.backend.calls == calls);
  CHECK(r.flash.writes == commits);
  CHECK(r.dev->wait_ms() == 10000);
  r.board.network = true;
  r.cycle();
  CHECK(r.backend.refused == 0);
}

TEST_CASE("device: an oversized or truncated poll answer is refused whole and applies nothing; the commands come later") {
  Rig r;
  REQUIRE(r.boot());
  r.cycle();
  SUBCASE("oversized: a backend that ignores rxbuf") {
    r.backend.ignore_rxbuf = true;
    for (int i = 0; i < 10; i++) r.backend.queue_command("{\"pad\":\"" + std::string(120, 'y') + "\"}");
    r.cycle();
    CHECK(r.log.has("config poll: answer larger than the 1535-byte buffer"));
    CHECK_FALSE(r.log.has("command 1 via"));
    CHECK(r.backend.queue.size() == 10);  // not acknowledged: still waiting
    r.backend.ignore_rxbuf = false;
    REQUIRE(r.until([&] { return r.backend.queue.empty(); }, 10));
    for (int i = 1; i <= 10; i++) CHECK(r.log.count("command " + std::to_string(i) + " via poll") == 1);
  }
  SUBCASE("truncated") {
    r.backend.queue_command("{\"led\":true}");
    r.backend.tamper = [](std::string &a) { a.resize(a.size() / 2); };
    r.cycle();
    CHECK(r.log.has("config poll: answer refused (not authentic or not ours)"));
    CHECK_FALSE(r.board.led_on);
    r.backend.tamper = nullptr;
    r.cycle();
    CHECK(r.board.led_on);
    CHECK(r.log.count("command 1 via poll") == 1);
  }
}

TEST_CASE("device: replayed and reordered commands are refused; a recorded config answer is not applied again") {
  Rig r;
  REQUIRE(r.boot());
  r.cycle();
  const std::string c1 = r.backend.seal(r.backend.keys_of(0), MsgType::Command, "{\"cmd\":{\"led\":true},\"SEQN\":1}");
  const std::string c2 = r.backend.seal(r.backend.keys_of(0), MsgType::Command, "{\"cmd\":{\"led\":false},\"SEQN\":2}");
  const std::string c3 = r.backend.seal(r.backend.keys_of(0), MsgType::Command, "{\"cmd\":{\"interval\":5},\"SEQN\":3}");
  CHECK(r.dev->on_push(c1.data(), c1.size()) == 200);
  CHECK(r.board.led_on);
  CHECK(r.dev->on_push(c1.data(), c1.size()) == 400);  // replayed
  CHECK(r.log.has("command via push refused: replay"));
  CHECK(r.dev->on_push(c3.data(), c3.size()) == 200);
  CHECK(r.dev->on_push(c2.data(), c2.size()) == 400);  // reordered: an older number after a newer one
  CHECK(r.board.led_on);
  CHECK(r.board.led_changes == 1);
  CHECK(r.dev->interval_s() == 5);
  // A replay survives no reboot either.
  REQUIRE(r.boot());
  CHECK(r.dev->on_push(c3.data(), c3.size()) == 400);
  // Too large for the buffer, and empty.
  const std::string huge(600, '{');
  CHECK(r.dev->on_push(huge.data(), huge.size()) == 413);
  CHECK(r.dev->on_push("", 0) == 413);
  // A config answer recorded earlier, replayed to a later poll: it names another request.
  std::string recorded;
  r.backend.tamper = [&](std::string &a) { recorded = a; };
  r.cycle();
  r.backend.cfgsn = 5;
  r.backend.data = "{\"interval\":2}";
  r.backend.tamper = [&](std::string &a) { a = recorded; };
  r.cycle();
  CHECK(r.log.has("answer refused (not authentic or not ours)"));
  CHECK(r.dev->cfgsn() != 5);
}

TEST_CASE("device: a wrong key: every registration refused, explained once, no backoff; a command under another key refused") {
  Rig r;
  r.key_hex = test_key_hex(7);
  REQUIRE(r.boot());
  for (int i = 0; i < 8; i++) r.cycle();
  CHECK_FALSE(r.backend.registered);
  CHECK(r.log.count("register as 5C:CF:7F:01:02:03: HTTP 400") == 8);
  CHECK(r.log.count("refused in a row (HTTP 400)") == 1);
  CHECK(r.dev->wait_ms() == 10000);
  const std::string other = r.backend.seal(r.backend.keys_of(0), MsgType::Command, "{\"cmd\":{\"led\":true},\"SEQN\":1}");
  CHECK(r.dev->on_push(other.data(), other.size()) == 400);
  CHECK(r.log.has("command via push refused: rejected"));
  CHECK_FALSE(r.board.led_on);
}

TEST_CASE("device: an owner's mistakes: the URL, the key, the id, the sample secrets, an SSID with quotes") {
  SUBCASE("a trailing slash is removed") {
    Rig r;
    r.url = "http://192.168.1.10:1880//";
    REQUIRE(r.boot());
    r.cycle();
    CHECK(r.backend.registered);
    CHECK(r.backend.paths[0] == "/api/devices/5C:CF:7F:01:02:03");
  }
  SUBCASE("a setting that cannot work halts the boot with one sentence") {
    const struct {
      const char *url;
      const char *key;
      const char *id;
      const char *said;
    } cases[] = {
        {"192.168.1.10:1880", nullptr, nullptr, "E2EE_BACKEND_URL must start with http:// (e.g. http://192.168.1.10:1880). Halting."},
        {"https://example.org", nullptr, nullptr, "E2EE_BACKEND_URL must be http:// (no TLS here; the data is end-to-end encrypted). Halting."},
        {"http://:1880", nullptr, nullptr, "E2EE_BACKEND_URL has no host. Halting."},
        {"http://host:99999", nullptr, nullptr, "E2EE_BACKEND_URL has a port outside 1..65535. Halting."},
        {nullptr, "not a key", nullptr, "E2EE_KEY_HEX must be 32, 48 or 64 hex digits. Halting."},
        {nullptr, nullptr, "", "E2EE_DEVICE_ID must be 1 to 64 characters. Halting."},
        {nullptr, nullptr, "an-id-of-65-characters-is-one-too-long-for-the-backend-0123456789", "E2EE_DEVICE_ID must be 1 to 64 characters. Halting."},
    };
    for (const auto &c : cases) {
      CAPTURE(c.said);
      Rig r;
      if (c.url) r.url = c.url;
      if (c.key) r.key_hex = c.key;
      if (c.id) r.settings.id = c.id;
      CHECK_FALSE(r.boot());
      CHECK(r.log.has(c.said));
      CHECK_FALSE(r.log.has(", auth "));
    }
  }
  SUBCASE("the sample secrets") {
    Rig r;
    r.settings.sample_secrets = true;
    REQUIRE(r.boot());
    CHECK(r.log.has("no include/secrets.h: the sample settings will not work"));
  }
  SUBCASE("an SSID with quotes and a backslash still makes valid JSON") {
    Rig r;
    r.board.ssid = "my \"lab\\\" net";
    REQUIRE(r.boot());
    r.cycle();
    CHECK(r.backend.registered);
    CHECK(r.backend.refused == 0);
  }
}

TEST_CASE("device: a reboot between storing a rekeyed key and its ack completes the rekey at boot") {
  // A clean run finds the commit that stores the key; the power goes at the next one (the ack), before any byte.
  long key_commit = -1;
  {
    Rig clean;
    REQUIRE(clean.boot());
    clean.cycle();
    clean.backend.queue_rekey();
    clean.cycle();
    for (size_t i = 0; i < clean.flash.ops.size() && key_commit < 0; i++) {
      if (clean.flash.ops[i].kind == 'w' && clean.flash.ops[i].first == uint8_t(JournalTag::Key)) key_commit = long(i);
    }
    REQUIRE(key_commit >= 0);
  }
  Rig r;
  REQUIRE(r.boot());
  r.cycle();
  const uint64_t m = r.backend.queue_rekey();
  r.flash.cut_at = key_commit + 1;
  r.cycle();
  REQUIRE(r.flash.power_lost);
  REQUIRE(r.boot());
  CHECK(r.log.has("using the key of version 1 from a rekey"));
  CHECK(r.log.has("command 1: rekey completed at boot"));
  CHECK(r.dev->ack() == m);
  r.cycle();
  CHECK(r.backend.keyver == 1);
  CHECK(r.backend.queue.empty());
  CHECK(r.backend.refused == 0);
}

/// A sleeper's life (E2EE_SLEEP_S): registration, readings, a command, a config change, a rekey and a command under
/// the new key, over wakes; a power cut during a wake loses the RTC memory too. What must hold whatever the cut: no
/// uplink refused, each command run at most once (exactly once unless the power went right after its ack was stored),
/// all acknowledged, device and backend on the same key.
static void sleeper_life(Rig &r, std::vector<int> *exchanges = nullptr, std::vector<int> *writes = nullptr) {
  auto step = [&](const std::function<bool()> &done) {
    for (int i = 0; i < 40 && !done(); i++) {
      const bool whole = r.wake();
      if (whole && exchanges) exchanges->push_back(int(r.dev->exchanges()));
      if (whole && writes) writes->push_back(r.flash.writes - r.flash_writes_before);
    }
    REQUIRE(done());
  };
  step([&] { return r.backend.registered && r.backend.readings.size() >= 3; });
  r.backend.queue_command("{\"led\":true}");
  step([&] { return r.backend.queue.empty(); });
  r.backend.data = "{\"interval\":600}";
  r.backend.cfgsn = 2;
  step([&] { return r.dev->interval_s() == 600; });
  r.backend.queue_rekey();
  step([&] { return r.backend.queue.empty() && r.backend.pending == -1; });
  r.backend.queue_command("{\"led\":false}");
  step([&] { return r.backend.queue.empty(); });
  const size_t before = r.backend.readings.size();
  step([&] { return r.backend.readings.size() >= before + 2; });
  ran_once(r, "{\"led\":true}", "{\"led\":false}");
}

static Rig &as_sleeper(Rig &r, uint32_t sleep_s = 900) {
  r.settings.sleep_s = sleep_s;
  return r;
}

TEST_CASE("sleeper: one exchange per wake; the counter in RTC memory; flash written only for a reservation, a command or a rekey") {
  const bool mqtt = GENERATE_TRANSPORT();
  Rig r(true, 0xFF, mqtt);
  as_sleeper(r);
  std::vector<int> exchanges, writes;
  sleeper_life(r, &exchanges, &writes);
  INFO(r.log.all());
  // Registration at the first wake, then exactly one exchange a wake: the reading, answered with the config.
  REQUIRE(exchanges.size() >= 8);
  CHECK(exchanges[0] == 2);
  for (size_t i = 1; i < exchanges.size(); i++) CHECK(exchanges[i] == 1);
  CHECK(r.backend.sleeper_readings == int(r.backend.readings.size()));
  CHECK(r.log.has("register as 5C:CF:7F:01:02:03:"));
  CHECK(r.log.has(mqtt ? "reading SEQN 1: MQTT 200" : "reading SEQN 1: HTTP 200"));
  CHECK(r.log.has("wake 2: awake "));
  CHECK(r.log.has(", 1 exchange, reading sent; sleeping 900 s"));
  // Flash: the first wake formats the journal and reserves a block; then only the command acks and the rekey write.
  const int total = std::accumulate(writes.begin(), writes.end(), 0);
  int quiet = 0;
  for (size_t i = 1; i < writes.size(); i++) quiet += writes[i] == 0;
  MESSAGE((mqtt ? "MQTT" : "HTTP") << ": " << writes.size() << " wakes, " << std::accumulate(exchanges.begin(), exchanges.end(), 0)
                                   << " exchanges, " << total << " flash writes (" << quiet << " wakes wrote nothing), " << r.flash.erases << " erases");
  CHECK(total <= 8);
  CHECK(r.flash.erases == 1);
  CHECK(quiet >= int(writes.size()) - 6);
  // After the rekey, the public key travels until an answer under the new key confirms it, not at every wake.
  const int epk = r.backend.with_epk;
  for (int i = 0; i < 3; i++) REQUIRE(r.wake());
  CHECK(r.backend.with_epk == epk);
  CHECK(epk >= 1);
  // The backend's only wire change for it: the registration declared the sleep.
  CHECK(r.backend.readings.back().find("\"sleep\":600") != std::string::npos);
}

TEST_CASE("sleeper: flash writes a day at one wake a minute, and the journal's life") {
  Rig r;
  as_sleeper(r, 60);
  REQUIRE(r.wake());
  const int writes0 = r.flash.writes;
  const int wakes = 24 * 60;
  for (int i = 0; i < wakes; i++) REQUIRE(r.wake());
  const int per_day = r.flash.writes - writes0;
  // One reservation per block of seq_block(60) = 120 SEQNs: 12 a day; an erase per 255 of them.
  MESSAGE("one wake a minute: " << per_day << " flash writes a day, " << r.flash.erases << " erase(s) in the first day; a sector lasts "
                                << 10000.0 * 255 * StorageLayout::kSectors / per_day / 365 << " years at 10,000 cycles");
  CHECK(per_day <= 13);
  CHECK(r.backend.readings.size() == size_t(wakes + 1));
  CHECK(r.backend.refused == 0);
}

TEST_CASE("sleeper: a power cut at every exchange and a torn write at every flash write of its life; nothing refused, nothing twice") {
  const bool mqtt = GENERATE_TRANSPORT();
  Rig clean(true, 0xFF, mqtt);
  as_sleeper(clean);
  sleeper_life(clean);
  const long calls = clean.backend.calls;
  const long ops = clean.flash.attempts;
  REQUIRE(calls > 10);
  REQUIRE(ops >= 4);
  for (int after = 0; after <= 1; after++) {
    for (long k = 0; k < calls; k++) {
      CAPTURE(k);
      CAPTURE(after);
      Rig r(true, 0xFF, mqtt);
      as_sleeper(r);
      r.backend.cut_at_call = k;
      r.backend.cut_after_processing = after == 1;
      sleeper_life(r);
    }
  }
  for (long j = 0; j < ops; j++) {
    for (long part : {0L, 3L, 11L, 19L}) {
      CAPTURE(j);
      CAPTURE(part);
      Rig r(true, 0xFF, mqtt);
      as_sleeper(r);
      r.flash.cut_at = j;
      r.flash.cut_bytes = part;
      sleeper_life(r);
    }
  }
}

TEST_CASE("sleeper: no network within the wake's bound: sleeps again, backing off, and spends no SEQN; a reset mid-wake does not reuse one") {
  Rig r;
  as_sleeper(r, 60);
  REQUIRE(r.wake());
  REQUIRE(r.backend.registered);
  r.board.network = false;
  const size_t accepted = r.backend.accepted.size();
  std::vector<uint32_t> sleeps;
  for (int i = 0; i < 4; i++) {
    REQUIRE(r.wake());
    sleeps.push_back(r.dev->sleep_ms());
  }
  CHECK(r.log.has("no network; sleeping"));
  CHECK(sleeps[0] >= 110000);  // doubled, minus the 8 s it waited
  CHECK(sleeps[1] > sleeps[0]);
  CHECK(sleeps[3] <= Device::kBackoffMaxS * 1000);
  r.board.network = true;
  REQUIRE(r.wake());
  CHECK(r.backend.accepted.size() == accepted + 1);
  CHECK(r.backend.accepted[accepted] == r.backend.accepted[accepted - 1] + 1);  // no number skipped
  CHECK(r.dev->sleep_ms() <= 60000);
  // A reset during a wake (the button, a crash: RTC memory kept, but this wake had taken it) boots from cold and
  // resumes at the bound on flash, past every number used.
  const size_t cold = r.log.count("sleeps between readings");
  REQUIRE(r.boot());
  REQUIRE(r.wake());
  CHECK(r.log.count("sleeps between readings") == cold + 1);
  CHECK(r.backend.refused == 0);
  CHECK(r.backend.accepted.back() > r.backend.accepted[accepted]);
}

TEST_CASE("sleeper: settings that cannot work halt the boot with one sentence") {
  Rig plain(false);
  as_sleeper(plain);
  CHECK_FALSE(plain.boot());
  CHECK(plain.log.has("E2EE_SLEEP_S needs E2EE_AUTH_HMAC 1 (a sleeper's reading is answered with the sealed config). Halting."));
  Rig day;
  as_sleeper(day, 86400);
  CHECK_FALSE(day.boot());
  CHECK(day.log.has("E2EE_SLEEP_S must be below 86400 (a day). Halting."));
}

/// A long seeded run with every fault at random. E2EE_CHAOS_SEED and E2EE_CHAOS_STEPS make it longer or another one
/// (`npm run fuzz:firmware` runs 20 seeds of 5,000 steps).
TEST_CASE("device: seeded chaos: outages, lost and cut answers, busy replies, reboots and torn writes while commands and rekeys flow") {
  const char *seed_env = std::getenv("E2EE_CHAOS_SEED");
  const char *steps_env = std::getenv("E2EE_CHAOS_STEPS");
  const uint32_t seed = seed_env ? uint32_t(std::strtoul(seed_env, nullptr, 10)) : 20261127u;
  const int steps = steps_env ? std::atoi(steps_env) : 1500;
  const bool mqtt = GENERATE_TRANSPORT();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  auto chance = [&](int percent) { return int(rng() % 100) < percent; };
  Rig r(true, 0xFF, mqtt);
  REQUIRE(r.boot());
  std::vector<uint64_t> commands;  // seqns of {"interval":...} commands
  std::vector<uint64_t> rekeys;
  int cuts = 0;
  int completed_cuts = 0;
  for (int step = 0; step < steps; step++) {
    if (chance(6) && r.backend.queue.size() < 8) {
      // (Refused, 0, while a rekey is pending.)
      const uint64_t m = r.backend.queue_command("{\"interval\":" + std::to_string(10 + step % 50) + "}");
      if (m) commands.push_back(m);
    }
    if (chance(1) && r.backend.pending == -1) rekeys.push_back(r.backend.queue_rekey());
    if (chance(4)) r.backend.down = 1 + int(rng() % 6);
    if (chance(3)) r.backend.lose_answers = 1;
    if (chance(3)) r.backend.busy = 1 + int(rng() % 3);
    if (chance(3)) r.backend.truncate_next = true;
    if (mqtt && chance(3)) r.broker.refuse_connects = 1 + int(rng() % 3);
    if (mqtt && chance(3)) r.broker.duplicate_next = 1;
    if (mqtt && chance(3)) r.broker.up = false;  // the connection drops between cycles
    if (chance(2)) {
      r.flash.cut_at = r.flash.attempts + long(rng() % 3);
      r.flash.cut_bytes = long(rng() % 30);
    } else if (chance(2)) {
      r.backend.cut_at_call = r.backend.calls + long(rng() % 4);
      r.backend.cut_after_processing = chance(50);
    }
    if (chance(2)) REQUIRE(r.boot());  // a reset between cycles
    r.cycle();
    if (r.flash.power_lost) {
      cuts++;
      completed_cuts += r.flash.cut_completed;
      r.flash.cut_completed = false;
      r.flash.cut_at = -1;
      REQUIRE(r.boot());
    }
    r.backend.cut_at_call = -1;
  }
  // Calm: no more faults; everything queued arrives and the rekeys complete.
  r.backend.down = r.backend.lose_answers = r.backend.busy = 0;
  r.backend.truncate_next = false;
  r.broker.refuse_connects = r.broker.duplicate_next = 0;
  r.flash.cut_at = -1;
  REQUIRE(r.until([&] { return r.backend.queue.empty() && r.backend.pending == -1; }, 200));
  const size_t readings = r.backend.readings.size();
  r.cycle();
  INFO("cuts " << cuts << ", after a whole write " << completed_cuts << ", boots " << r.boots);
  CHECK(r.backend.readings.size() == readings + 1);
  // Over MQTT the only refusals are the broker's duplicates (each refused as a replay, never stored twice).
  CHECK(r.backend.refused == r.broker.duplicates_refused);
  CHECK(r.broker.duplicates_accepted == 0);
  if (mqtt) CHECK(r.broker.duplicates_refused > 5);
  CHECK(r.dev->key_version() == int64_t(r.backend.keyver));
  CHECK(r.backend.keyver == rekeys.size());
  size_t run = 0;
  for (uint64_t m : commands) {
    const size_t n = ran(r.log, m, "{");
    CHECK_MESSAGE(n <= 1, "command " << m << " ran " << n << " times");
    run += n;
  }
  // Each command runs once, except one lost to each power cut right after a whole write (its ack stored, not acted on).
  CHECK(run + size_t(completed_cuts) >= commands.size());
  CHECK(commands.size() > 20);
  CHECK(cuts > 5);
  for (size_t i = 1; i < r.backend.accepted.size(); i++) CHECK(r.backend.accepted[i] > r.backend.accepted[i - 1]);
}

TEST_CASE("firmware/README.md: every log line it shows is one the device says in these tests") {
  // Declared last in this file, so it runs after the device test cases (doctest's default order): run the whole suite.
  REQUIRE_MESSAGE(all_lines().size() > 100, "needs the lines of the device test cases: run the whole suite");
  std::ifstream in(E2EE_README);
  REQUIRE_MESSAGE(in.good(), "cannot read " E2EE_README);
  // Numbers differ from run to run; the rest must match exactly.
  auto shape = [](const std::string &s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
      const bool digit = s[i] >= '0' && s[i] <= '9';
      if (!digit) out += s[i];
      else if (i == 0 || !(s[i - 1] >= '0' && s[i - 1] <= '9')) out += '#';
    }
    return out;
  };
  std::set<std::string> said;
  for (const auto &l : all_lines()) said.insert(shape(l));
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    if (line.rfind("[e2ee] ", 0) != 0) continue;
    // WiFi lines come from the board (src/main.cpp), not from the device.
    if (line.rfind("[e2ee] WiFi:", 0) == 0) continue;
    CHECK_MESSAGE(said.count(shape(line)) == 1, line);
    checked++;
  }
  CHECK(checked >= 10);
}
