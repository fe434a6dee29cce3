#pragma once
// A backend for the host tests of e2ee::Device that speaks the real wire format (the package README, "The device
// protocol"): sealed register, poll and readings with SEQN and ack, sealed config answers naming the request, commands
// acknowledged by SEQN, the X25519 rekey with a pending version promoted by the first message under it (its key made
// from the device's public key, sent as epk, with BearSSL as the server side); and in plain mode the
// seed's plain registration and poll. It seals and opens with lib/e2ee, whose output the shared vectors pin to the
// Node-RED nodes byte for byte. Faults are injected per exchange.
#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <bearssl/bearssl.h>

#include "e2ee.h"
#include "support.h"

/// The key of version v in these tests: 16 bytes of v + 1.
inline std::string test_key_hex(uint32_t v) {
  static const char *const digits = "0123456789abcdef";
  std::string hex;
  for (int i = 0; i < 16; i++) {
    hex += digits[((v + 1) >> 4) & 15];
    hex += digits[(v + 1) & 15];
  }
  return hex;
}

struct FakeBackend : e2ee::Http {
  std::string base = "http://192.168.1.10:1880/api/devices/";
  std::string id;
  bool hmac;
  uint32_t keyver = 0;
  int64_t pending = -1;
  bool registered = false;
  bool seen = false;
  uint64_t floor = 0;
  size_t rxbuf = 0;
  uint64_t cfgsn = 1;
  std::string data = "{}";
  struct Cmd {
    uint64_t seqn;
    std::string body;
  };
  std::deque<Cmd> queue;  ///< not yet acknowledged (hmac) / not yet offered (plain)
  std::map<uint32_t, std::string> rekeyed;  ///< keys rekeys made, by version (raw bytes); others: test_key_hex
  uint8_t server_sk[32] = {};               ///< the pending rekey's X25519 secret (BearSSL's big-endian multiplier)
  std::string server_pub;                    ///< and its public key
  uint64_t next_cmd = 1;
  std::vector<std::string> readings;  ///< accepted reading plaintexts
  int sleeper_readings = 0;           ///< readings that said "sleep" (answered with the config)
  std::vector<uint64_t> accepted;     ///< accepted uplink SEQNs, in order
  int refused = 0;                    ///< uplinks answered 400
  int calls = 0;
  std::vector<std::string> paths;     ///< every request path, as received

  // Faults.
  int down = 0;                  ///< the next N exchanges: no connection, nothing arrives (kHttpConnectFailed)
  int lose_answers = 0;          ///< the next N: processed, then the answer is lost (HTTP read timeout, -11)
  int status = 0;                ///< when set: every exchange gets this status, unprocessed (e.g. 503)
  int busy = 0;                  ///< the next N exchanges: 503, unprocessed (the database is down)
  bool truncate_next = false;    ///< the next 2xx answer arrives cut in half (as an adapter that missed it would pass it)
  bool ignore_rxbuf = false;     ///< offers every waiting command, whatever the device's buffer
  std::function<void(std::string &)> tamper;  ///< changes a 2xx answer before the device reads it
  std::function<void(const std::string &)> push;  ///< set by FakeBroker: each queued command is published at once
  MemFlash *power = nullptr;     ///< when its power is lost, the device is dead: nothing leaves it
  long cut_at_call = -1;         ///< at this call number the power goes: before (cut_after_processing false) or after
  bool cut_after_processing = false;

  FakeBackend(std::string device_id, bool hmac_mode) : id(std::move(device_id)), hmac(hmac_mode) {}

  e2ee::Keys keys_of(uint32_t version) const {
    e2ee::Keys k;
    const auto it = rekeyed.find(version);
    if (it != rekeyed.end()) {
      e2ee::keys_init(&k, reinterpret_cast<const uint8_t *>(it->second.data()), it->second.size(), e2ee::Auth::HmacSha256);
    } else {
      e2ee::keys_from_hex(&k, test_key_hex(version).c_str(), hmac ? e2ee::Auth::HmacSha256 : e2ee::Auth::None);
    }
    if (hmac) k.kv = version;
    return k;
  }

  /// The server's half of the rekey: K(pending) from the device's public key (README, "Rekey"); false when it gives none.
  bool rekey_key(const uint8_t device_pub[32], std::string *out) const {
    uint8_t shared[32];
    memcpy(shared, device_pub, 32);
    if (br_ec_c25519_m15.mul(shared, 32, server_sk, 32, BR_EC_curve25519) != 1) return false;
    const e2ee::Keys old = keys_of(keyver);
    std::string info = std::string("esp-e2ee v1 rekey") + '\0' + id;
    for (int shift = 24; shift >= 0; shift -= 8) info += char(uint8_t(uint32_t(pending) >> shift));
    info += server_pub + std::string(reinterpret_cast<const char *>(device_pub), 32);
    br_hkdf_context hc;
    br_hkdf_init(&hc, &br_sha256_vtable, old.raw, old.enc_len);
    br_hkdf_inject(&hc, shared, 32);
    br_hkdf_flip(&hc);
    uint8_t key[16];
    br_hkdf_produce(&hc, info.data(), info.size(), key, 16);
    *out = std::string(reinterpret_cast<const char *>(key), 16);
    return true;
  }

  std::string seal(const e2ee::Keys &k, e2ee::MsgType type, const std::string &plain) const { return seal_text(k, type, id, plain); }

  /// The operator queues a command, sealed under the current key; 0 (refused, as the registry's 409) while a rekey is
  /// pending, whose key exists only once the device has answered it.
  uint64_t queue_command(const std::string &cmd_json) {
    if (hmac && pending >= 0) return 0;
    const uint64_t m = next_cmd++;
    queue.push_back({m, seal(keys_of(keyver), e2ee::MsgType::Command, "{\"cmd\":" + cmd_json + ",\"SEQN\":" + std::to_string(m) + "}")});
    if (push) push(queue.back().body);
    return m;
  }

  /// The operator's rekey to the next version: the command, sealed under the current key, carries the server's fresh
  /// X25519 public key.
  uint64_t queue_rekey() {
    const uint32_t to = keyver + 1;
    pending = to;
    test_random(server_sk, sizeof(server_sk));
    uint8_t pub[32];
    br_ec_c25519_m15.mulgen(pub, server_sk, 32, BR_EC_curve25519);
    server_pub.assign(reinterpret_cast<const char *>(pub), 32);
    static const char *const digits = "0123456789abcdef";
    std::string pub_hex;
    for (uint8_t b : pub) {
      pub_hex += digits[b >> 4];
      pub_hex += digits[b & 15];
    }
    const uint64_t m = next_cmd++;
    queue.push_back({m, seal(keys_of(keyver), e2ee::MsgType::Command,
                             "{\"rekey\":{\"kv\":" + std::to_string(to) + ",\"pub\":\"" + pub_hex + "\"},\"SEQN\":" + std::to_string(m) + "}")});
    if (push) push(queue.back().body);
    return m;
  }

  /// Uplinks that came with epk (the device's public key of a rekey).
  int with_epk = 0;

  /// POST /api/devices/:id/reset: forgets the device's uplink counter.
  void reset_counter() {
    seen = false;
    floor = 0;
  }

  const char *error_text(int code) override { return code == -1 ? "connection failed" : code == -11 ? "read Timeout" : "other error"; }

  int exchange(const char *url, const char *body, size_t body_len, char *rx, size_t rx_size, size_t *rx_len) override {
    *rx_len = 0;
    const long call = calls++;
    if (power && power->power_lost) return e2ee::kHttpConnectFailed;
    if (call == cut_at_call && !cut_after_processing) {
      if (power) power->power_lost = true;
      return e2ee::kHttpConnectFailed;
    }
    if (down > 0) {
      down--;
      return e2ee::kHttpConnectFailed;
    }
    std::string u(url);
    if (u.compare(0, base.size(), base) != 0) return 404;
    std::string rest = u.substr(base.size());
    paths.push_back("/api/devices/" + rest);
    if (status) return status;
    if (busy > 0) {
      busy--;
      return 503;
    }
    std::string answer;
    int code = handle(rest, body ? std::string(body, body_len) : std::string(), body == nullptr, &answer);
    if (call == cut_at_call && cut_after_processing) {
      if (power) power->power_lost = true;
      return -11;
    }
    if (lose_answers > 0) {
      lose_answers--;
      return -11;
    }
    if (code >= 200 && code < 300) {
      if (tamper) tamper(answer);
      // On the wire in this framing, then read back through the firmware's own HttpBody, as src/main.cpp reads it.
      std::string wire = frame(answer);
      if (truncate_next) {
        // The connection ends halfway through the body.
        wire.resize(wire.size() / 2);
        truncate_next = false;
      }
      const e2ee::HttpBody::Framing f = framing == 'c' ? e2ee::HttpBody::Framing::Chunked : framing == 'x' ? e2ee::HttpBody::Framing::Close : e2ee::HttpBody::Framing::Length;
      e2ee::HttpBody reader(f, answer.size(), rx, rx_size);
      // In pieces of a few bytes, as they come off a socket.
      for (size_t at = 0; at < wire.size() && reader.feed(wire.data() + at, std::min<size_t>(13, wire.size() - at)); at += 13) {
      }
      const int read = reader.result(rx_len);
      if (read != 0) return read;
    }
    return code;
  }

  /// How answers are framed: 'l' Content-Length, 'c' chunked, 'x' up to the close (a proxy that re-frames them).
  char framing = 'l';

  /// The answer's body as it travels in this framing.
  std::string frame(const std::string &body) const {
    if (framing != 'c') return body;
    // Chunks of 1, 7, 64, 1000 bytes in turn, one with an extension; a trailer at the end.
    std::string out;
    static const size_t sizes[] = {1, 7, 64, 1000};
    size_t at = 0;
    for (int i = 0; at < body.size(); i++) {
      const size_t n = std::min(sizes[i % 4], body.size() - at);
      char head[32];
      snprintf(head, sizeof(head), i == 2 ? "%zx;ext=1\r\n" : "%zX\r\n", n);
      out += head;
      out.append(body, at, n);
      out += "\r\n";
      at += n;
    }
    return out + "0\r\nX-Trailer: 1\r\n\r\n";
  }

 private:
  /// The commands for a config answer: waiting ones in order, at most 10, as many as keep it within rxbuf.
  std::vector<Cmd> offer(const std::function<size_t(const std::vector<Cmd> &)> &size_with, bool *more) {
    std::vector<Cmd> out;
    for (const Cmd &c : queue) {
      if (out.size() == 10) break;
      out.push_back(c);
      if (!ignore_rxbuf && rxbuf && size_with(out) > rxbuf) {
        out.pop_back();
        break;
      }
    }
    *more = out.size() < queue.size();
    return out;
  }

  static std::string list(const std::vector<Cmd> &cmds) {
    std::string s = "[";
    for (size_t i = 0; i < cmds.size(); i++) s += (i ? "," : "") + cmds[i].body;
    return s + "]";
  }

  std::string config_plain(uint64_t re, const std::vector<Cmd> &cmds, bool more) const {
    return "{\"re\":" + std::to_string(re) + ",\"cfgsn\":" + std::to_string(cfgsn) + ",\"data\":" + data + ",\"commands\":" + list(cmds) +
           ",\"more\":" + (more ? "true" : "false") + "}";
  }

  int handle(const std::string &rest, const std::string &body, bool get, std::string *answer) {
    const size_t slash = rest.find('/');
    if (rest.substr(0, slash) != id) return 404;
    const std::string route = slash == std::string::npos ? "" : rest.substr(slash);
    if (!hmac) return handle_plain(route, body, get, answer);
    if (get) return 401;
    e2ee::MsgType type;
    if (route.empty()) type = e2ee::MsgType::Register;
    else if (route == "/readings") type = e2ee::MsgType::Reading;
    else if (route == "/poll") type = e2ee::MsgType::Poll;
    else return 404;
    uint64_t kv = 0;
    e2ee::json_uint(body.data(), body.size(), "kv", &kv);
    std::vector<uint8_t> pt(body.size() + 1);
    size_t n = 0;
    e2ee::Span epk_b64;
    uint8_t epk[32];
    size_t epk_len = 0;
    const bool has_epk = e2ee::json_string(body.data(), body.size(), "epk", &epk_b64) &&
                         e2ee::base64_decode(epk_b64.ptr, epk_b64.len, epk, sizeof(epk), &epk_len) && epk_len == 32;
    with_epk += has_epk;
    // The pending version opens only with the key its exchange makes; once promoted, the key kept (epk ignored).
    e2ee::Keys k = keys_of(uint32_t(kv));
    std::string made;
    if (int64_t(kv) == pending) {
      if (!has_epk || !rekey_key(epk, &made)) {
        refused++;
        return 400;
      }
      e2ee::keys_init(&k, reinterpret_cast<const uint8_t *>(made.data()), made.size(), e2ee::Auth::HmacSha256);
      k.kv = int64_t(kv);
    }
    if ((kv != keyver && int64_t(kv) != pending) || e2ee::open(k, type, id.c_str(), body.data(), body.size(), pt.data(), pt.size(), &n) != e2ee::OpenStatus::Ok) {
      refused++;
      return 400;
    }
    const char *text = reinterpret_cast<const char *>(pt.data());
    uint64_t seqn = 0;
    if (!e2ee::json_uint(text, n, "SEQN", &seqn) || (seen && seqn <= floor)) {
      refused++;
      return 400;
    }
    if (type != e2ee::MsgType::Register && !registered) return 404;
    seen = true;
    floor = seqn;
    accepted.push_back(seqn);
    if (int64_t(kv) == pending) {
      rekeyed[uint32_t(kv)] = made;
      keyver = uint32_t(kv);
      pending = -1;
    }
    uint64_t ack = 0;
    if (e2ee::json_uint(text, n, "ack", &ack)) {
      while (!queue.empty() && queue.front().seqn <= ack) queue.pop_front();
    }
    uint64_t sleep = 0;
    const bool sleeper = type == e2ee::MsgType::Reading && e2ee::json_uint(text, n, "sleep", &sleep) && sleep > 0;
    if (type == e2ee::MsgType::Reading) {
      readings.push_back(std::string(text, n));
      // A sleeper's reading is answered with the sealed config, as a poll is (the README's wire format).
      if (sleeper) sleeper_readings++;
      if (!sleeper) {
        *answer = "{\"status\":\"OK\"}";
        return 200;
      }
    }
    int code = 200;
    if (type == e2ee::MsgType::Register) {
      uint64_t buf = 0;
      if (e2ee::json_uint(text, n, "rxbuf", &buf)) rxbuf = size_t(buf);
      code = registered ? 200 : 201;
      registered = true;
    }
    k = keys_of(uint32_t(kv));
    bool more = false;
    const std::vector<Cmd> cmds = offer([&](const std::vector<Cmd> &c) { return seal(k, e2ee::MsgType::Config, config_plain(seqn, c, true)).size(); }, &more);
    *answer = seal(k, e2ee::MsgType::Config, config_plain(seqn, cmds, more));
    return code;
  }

  int handle_plain(const std::string &route, const std::string &body, bool get, std::string *answer) {
    if (route.empty() && !get) {
      uint64_t buf = 0;
      if (e2ee::json_uint(body.data(), body.size(), "rxbuf", &buf)) rxbuf = size_t(buf);
      const int code = registered ? 200 : 201;
      registered = true;
      *answer = "{\"deviceid\":\"" + id + "\",\"cfgsn\":" + std::to_string(cfgsn) + "}";
      return code;
    }
    if (!registered) return 404;
    if (route.empty()) {
      // Offering a command delivers it in this mode.
      bool more = false;
      const std::vector<Cmd> cmds = offer([&](const std::vector<Cmd> &c) {
        return ("{\"cfgsn\":" + std::to_string(cfgsn) + ",\"data\":" + data + ",\"commands\":" + list(c) + "}").size();
      }, &more);
      for (size_t i = 0; i < cmds.size(); i++) queue.pop_front();
      *answer = "{\"cfgsn\":" + std::to_string(cfgsn) + ",\"data\":" + data + ",\"commands\":" + list(cmds) + "}";
      return 200;
    }
    if (route != "/readings" || get) return 404;
    std::vector<uint8_t> pt(body.size() + 1);
    size_t n = 0;
    uint64_t seqn = 0;
    if (e2ee::open(keys_of(0), e2ee::MsgType::Reading, id.c_str(), body.data(), body.size(), pt.data(), pt.size(), &n) != e2ee::OpenStatus::Ok ||
        !e2ee::json_uint(reinterpret_cast<const char *>(pt.data()), n, "SEQN", &seqn) || (seen && seqn <= floor)) {
      refused++;
      return 400;
    }
    seen = true;
    floor = seqn;
    accepted.push_back(seqn);
    readings.push_back(std::string(reinterpret_cast<const char *>(pt.data()), n));
    *answer = "{\"status\":\"OK\"}";
    return 200;
  }
};

/// A broker for the host tests of MqttTransport, in front of the same FakeBackend: an uplink published to
/// <prefix>/<id>/up/<type> is handed to the backend as the matching HTTP route (so every fault above applies), a
/// registration's or poll's config answer comes back on <prefix>/<id>/down, and commands the backend queues are
/// published there at once (FakeBackend::push). Like a real broker with a persistent session, it keeps what is
/// published to `down` while the device is away and delivers it when the device polls after reconnecting; a message
/// whose handling the power cut short is delivered again (QoS 1).
struct FakeBroker : e2ee::MqttClient {
  FakeBackend &backend;
  e2ee::Clock &clock;
  uint32_t *now;                     ///< the test clock's time, moved on while the device waits
  e2ee::MqttTransport *transport = nullptr;
  std::string prefix = "esp-e2ee";
  bool up = false;                   ///< the device's connection
  int refuse_connects = 0;           ///< the next N connects fail (the broker down)
  int duplicate_next = 0;            ///< the next N uplinks reach the backend twice (a QoS 1 redelivery)
  int duplicates_refused = 0;        ///< second copies the backend refused (as replays)
  int duplicates_accepted = 0;       ///< second copies of an accepted uplink it accepted again: must stay 0
  std::deque<std::string> session;   ///< published to `down`, not yet delivered
  std::vector<std::string> statuses; ///< what the device published on `status`
  Login last{};
  std::string user, password, will_topic, will_payload, subscribed;
  int connects = 0;

  FakeBroker(FakeBackend &b, e2ee::Clock &c, uint32_t *now_ms) : backend(b), clock(c), now(now_ms) {
    backend.push = [this](const std::string &body) { session.push_back(body); };
  }

  bool connect(const Login &login) override {
    if ((backend.power && backend.power->power_lost) || refuse_connects > 0) {
      if (refuse_connects > 0) refuse_connects--;
      return false;
    }
    user = login.user;
    password = login.password;
    will_topic = login.will_topic;
    will_payload = login.will_payload;
    subscribed = login.subscribe;
    connects++;
    up = true;
    return true;
  }
  bool connected() override { return up && !(backend.power && backend.power->power_lost); }
  const char *error_text() override { return "connection refused"; }

  bool publish(const char *topic, const char *payload, size_t len) override {
    if (!connected()) return false;
    const std::string t(topic), head = prefix + "/" + backend.id + "/";
    if (t == head + "status") {
      statuses.emplace_back(payload, len);
      return true;
    }
    static const std::map<std::string, std::string> routes = {{"up/register", ""}, {"up/reading", "/readings"}, {"up/poll", "/poll"}};
    if (t.compare(0, head.size(), head) != 0 || routes.count(t.substr(head.size())) == 0) return true;  // nobody subscribes
    const std::string url = backend.base + backend.id + routes.at(t.substr(head.size()));
    bool first_accepted = false;
    for (int copy = 0; copy < 1 + (duplicate_next > 0); copy++) {
      static char answer[65536];
      size_t n = 0;
      const int refused_before = backend.refused;
      const size_t accepted_before = backend.accepted.size();
      const int code = backend.exchange(url.c_str(), payload, len, answer, sizeof(answer), &n);
      if (copy == 0) first_accepted = backend.accepted.size() > accepted_before;
      // (A second copy of one the backend did not take, as a 503, is the delivery that counts.)
      if (copy == 1) {
        duplicates_refused += backend.refused - refused_before;
        if (first_accepted) duplicates_accepted += int(backend.accepted.size() - accepted_before);
      }
      // Nothing arrived (the power went before it left): the connection is gone.
      if (code == e2ee::kHttpConnectFailed) {
        up = false;
        return false;
      }
      // The backend answers registrations and polls on `down`; refusals and always-on devices' readings get nothing.
      // (A sleeper's reading is answered too: with the sealed config, not {"status":"OK"}.)
      if ((code == 200 || code == 201) && (routes.at(t.substr(head.size())) != "/readings" || strstr(answer, "\"iv\"") != nullptr))
        session.emplace_back(answer, n);
    }
    if (duplicate_next > 0) duplicate_next--;
    return true;
  }

  void poll(uint32_t wait_ms) override {
    *now += wait_ms;
    while (connected() && !session.empty()) {
      const std::string msg = session.front();
      transport->on_message(subscribed.c_str(), msg.data(), msg.size());
      // A power cut while the device handled it: not acknowledged, delivered again after the reconnect.
      if (backend.power && backend.power->power_lost) return;
      session.pop_front();
    }
  }
};
