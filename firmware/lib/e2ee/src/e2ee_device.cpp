#include "e2ee_device.h"

#include "e2ee_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

namespace e2ee {

namespace {

/// The decimal text of a 64-bit number, for printf's %s.
struct Num {
  char s[21];
  explicit Num(uint64_t v) { u64_text(v, s); }
};

/// Copies text into out (NUL-terminated, cut to fit) with every character that would need escaping in a JSON string
/// (a quote, a backslash, a control character) replaced by '?': an SSID may hold any of them.
void json_safe(const char *text, char *out, size_t out_size) {
  size_t i = 0;
  for (; text[i] && i + 1 < out_size; i++) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    out[i] = c < 0x20 || c == '"' || c == '\\' ? '?' : char(c);
  }
  out[i] = '\0';
}

/// How the log names a command's status (in flash on the ESP8266, as every log text).
const char *status_text(CommandStatus st) {
  switch (st) {
    case CommandStatus::Ok: return E2EE_TEXT("ok");
    case CommandStatus::BadBody: return E2EE_TEXT("bad body");
    case CommandStatus::Rejected: return E2EE_TEXT("rejected");
    case CommandStatus::BadCommand: return E2EE_TEXT("bad command");
    case CommandStatus::Replay: return E2EE_TEXT("replay");
    case CommandStatus::StoreFailed: return E2EE_TEXT("flash write failed");
    case CommandStatus::Rekey: return E2EE_TEXT("rekey");
  }
  return E2EE_TEXT("rejected");
}

/// A result of exchange(): the config answer did not verify, or did not answer this request.
constexpr int kAnswerRefused = -102;

}  // namespace

Device::Device(const DeviceSettings &settings, const DeviceBuffers &buffers, Flash &flash, Transport &transport, Clock &clock, RandomFn random,
               LogSink &log, Actions &actions, RtcMemory *rtc)
    : settings_(settings),
      buf_(buffers),
      transport_(transport),
      clock_(clock),
      random_(random),
      log_(log),
      actions_(actions),
      journal_(flash),
      uplink_store_(journal_, JournalTag::Uplink),
      downlink_store_(journal_, JournalTag::Ack),
      key_record_(journal_),
      rtc_(rtc),
      seq_(uplink_store_, StorageLayout::seq_block(settings.sleep_s > 0 ? settings.sleep_s : settings.interval_s)),
      downlink_(downlink_store_),
      refusals_(kRefusalHint),
      keys_(),
      interval_s_(settings.sleep_s > 0 ? settings.sleep_s : settings.interval_s > 0 ? settings.interval_s : 1) {}

void Device::say(const char *fmt, ...) {
  char line[320];
  const int head = snprintf(line, sizeof(line), "[e2ee] ");
  va_list args;
  va_start(args, fmt);
  vsnprintf(line + head, sizeof(line) - size_t(head), fmt, args);
  va_end(args);
  log_.line(line);
}

bool Device::begin() {
  const SlotState state = journal_.mount();
  const bool damaged = journal_.damaged();
  seq_.begin();
  downlink_.begin();
  if (state != SlotState::Ok) {
    say(E2EE_TEXT("storage: journal %s: SEQN restarts at 0 (if refused: POST /api/devices/<id>/reset), commands are accepted from SEQN 1 again"),
        slot_state_name(state));
  } else if (damaged) {
    say(E2EE_TEXT("storage: a damaged journal record (a write cut short): SEQN skips %lu ahead"), static_cast<unsigned long>(seq_.block()));
  }
  // A fresh sector at once, so the next boot is silent about it (after damage, reserving the skip wrote one).
  if ((state != SlotState::Ok || journal_.damaged()) && !journal_.compact()) say(E2EE_TEXT("storage: the flash cannot be written"));
  if (settings_.sample_secrets) say(E2EE_TEXT("no include/secrets.h: the sample settings will not work"));
  const size_t id_len = settings_.id ? strlen(settings_.id) : 0;
  const char *halt = nullptr;
  if (id_len == 0 || id_len > 64) {
    halt = E2EE_TEXT("E2EE_DEVICE_ID must be 1 to 64 characters");
  } else if (!keys_from_hex(&keys_, settings_.key_hex, settings_.auth)) {
    halt = E2EE_TEXT("E2EE_KEY_HEX must be 32, 48 or 64 hex digits");
  } else if (settings_.sleep_s > 0 && (settings_.auth != Auth::HmacSha256 || rtc_ == nullptr)) {
    halt = E2EE_TEXT("E2EE_SLEEP_S needs E2EE_AUTH_HMAC 1 (a sleeper's reading is answered with the sealed config)");
  } else if (settings_.sleep_s >= 86400) {
    halt = E2EE_TEXT("E2EE_SLEEP_S must be below 86400 (a day)");
  } else {
    halt = transport_.begin(settings_.id, settings_.auth, *this);
  }
  if (halt) {
    say(E2EE_TEXT("%s. Halting."), halt);
    return false;
  }
  if (settings_.auth == Auth::HmacSha256) {
    keys_.kv = settings_.key_version;
    uint32_t version = 0;
    uint8_t key[kDeviceKeyLen];
    uint8_t pub[kX25519Len];
    uint64_t seqn = 0;
    // None is the normal case (never rekeyed).
    if (key_record_.load(&version, key, &seqn, pub)) {
      if (version > settings_.key_version && keys_init(&keys_, key, sizeof(key), Auth::HmacSha256)) {
        keys_.kv = version;
        // Whether the server has the key is not known after a reboot: the public key goes with each uplink until a
        // config answer under the new key shows it (the server ignores it once it has the key).
        memcpy(keys_.epk, pub, kX25519Len);
        keys_.send_epk = true;
        say(E2EE_TEXT("using the key of version %lu from a rekey"), static_cast<unsigned long>(version));
        // The key was stored, the command's SEQN perhaps not (a reboot in between): the rekey was accepted all the same.
        if (seqn > downlink_.last() && downlink_.commit(seqn)) say(E2EE_TEXT("command %s: rekey completed at boot"), Num(seqn).s);
      }
    }
    memset(key, 0, sizeof(key));
  }
  if (settings_.sleep_s > 0) resume_wake();
  if (!woke_) {
    say(E2EE_TEXT("device %s, auth %s, backend %s%s"), settings_.id, settings_.auth == Auth::HmacSha256 ? E2EE_TEXT("hmac-sha256") : E2EE_TEXT("none"), transport_.where(),
        settings_.sleep_s > 0 ? E2EE_TEXT(", sleeps between readings") : "");
  }
  return true;
}

void Device::resume_wake() {
  WakeState w;
  // From deep sleep (not after a power-on or a crash): the counter goes on from RTC memory, no flash write. The state
  // must match the flash (the same ack, a SEQN within the stored bound), else it is not this wake's.
  if (WakeState::load(*rtc_, &w) && w.ack == downlink_.last() && seq_.resume(w.next_seqn)) {
    woke_ = true;
    registered_ = w.registered != 0;
    cfgsn_ = w.cfgsn;
    if (w.interval_s > 0) interval_s_ = w.interval_s;
    wakes_ = w.wakes;
    failures_ = w.failures;
    memcpy(network_, w.network, sizeof(network_));
    // A wake is a reset: without this the rekeyed key's public key would travel with the first uplink of every wake.
    if (w.spare[0] == 1 && w.spare[1] == uint8_t(keys_.kv)) keys_.send_epk = false;
  }
  rescale_block();
  // Used up now: a reset during this wake (a crash, the button) must not go back to these numbers.
  WakeState::clear(*rtc_);
  actions_.network_recall(network_, sizeof(network_));
  // The sensor is read before the network is up.
  have_sample_ = actions_.sample(sample_, sizeof(sample_));
}

void Device::loop() {
  if (settings_.sleep_s > 0) {
    if (asleep_) return;
    if (!started_) {
      started_ = true;
      wake_ms_ = clock_.millis();
    }
    transport_.service();
    const bool network = actions_.network_up();
    // The board joins in the background; the wake waits for it a bounded time.
    if (!network && clock_.millis() - wake_ms_ < kWakeNetworkMs) return;
    wake_cycle(network);
    return;
  }
  transport_.service();
  const uint32_t now = clock_.millis();
  if (started_ && now - last_ms_ < wait_ms_) {
    // A command that came on its own (MQTT) is acknowledged at once by a poll, outside the schedule.
    if (ack_due_ && registered_ && actions_.network_up()) {
      bool more = false;
      uplink(MsgType::Poll, &more);
    }
    return;
  }
  started_ = true;
  last_ms_ = now;
  cycle();
}

void Device::cycle() {
  Outcome result = Outcome::Done;
  // Nothing is reserved while the network is down: no sequence number is used up by waiting.
  if (actions_.network_up()) {
    if (!registered_) result = uplink(MsgType::Register, nullptr);
    if (registered_) {
      result = uplink(MsgType::Reading, nullptr);
      // The poll asks again while the answer says more commands wait (bounded: the rest come next cycle).
      bool more = result != Outcome::Unreachable;
      if (!more) ack_due_ = false;
      // A command that came on its own during this cycle (MQTT) gets its ack in one more poll.
      for (uint32_t i = 0; (more || ack_due_) && registered_ && i < kMorePolls; i++) {
        more = false;
        const Outcome polled = uplink(MsgType::Poll, &more);
        if (polled != Outcome::Done) result = polled;
      }
    }
  }
  uint32_t wait = interval_s_ * 1000u;
  if (result != Outcome::Unreachable) {
    failures_ = 0;
  } else {
    if (failures_ < kBackoffSteps) failures_++;
    const uint32_t cap = wait > kBackoffMaxS * 1000u ? wait : kBackoffMaxS * 1000u;
    for (uint32_t i = 0; i < failures_; i++) wait = wait > cap / 2 ? cap : wait * 2;
    // Up to 1/8 more, at random, so a fleet does not come back all at once after an outage.
    uint8_t r[2];
    random_(r, sizeof(r));
    wait += (uint32_t(r[0]) << 8 | r[1]) % (wait / 8 + 1);
    say(E2EE_TEXT("backend unavailable: next try in %lu s"), static_cast<unsigned long>((wait + 999) / 1000));
  }
  wait_ms_ = wait;
}

void Device::wake_cycle(bool network) {
  Outcome result = Outcome::Unreachable;
  const char *why = E2EE_TEXT("no network");
  if (network) {
    result = Outcome::Done;
    if (!registered_) result = uplink(MsgType::Register, nullptr);
    if (registered_) {
      // One exchange: the reading's answer is the config answer, with the commands waiting.
      bool more = false;
      result = uplink(MsgType::Reading, &more);
      // What the broker queued while the device slept (over MQTT: commands published to `down`, which the answer
      // offered too). A command taken from either is acknowledged by the next wake's reading, not by a poll now: one
      // exchange per wake. Polls only while the answer says more commands wait than it could carry.
      if (result != Outcome::Unreachable) transport_.linger(kLingerMs);
      ack_due_ = false;
      for (uint32_t i = 0; more && registered_ && result != Outcome::Unreachable && i < kMorePolls; i++) {
        more = false;
        const Outcome polled = uplink(MsgType::Poll, &more);
        if (polled != Outcome::Done) result = polled;
      }
    }
    why = result == Outcome::Done ? E2EE_TEXT("reading sent") : result == Outcome::Refused ? E2EE_TEXT("refused") : E2EE_TEXT("backend unavailable");
  }
  uint32_t sleep_s = interval_s_;
  if (result == Outcome::Unreachable) {
    // Backing off as the always-on device does, but asleep: up to interval x 2^kBackoffSteps, at most 300 s (or the interval).
    if (failures_ < kBackoffSteps) failures_++;
    const uint32_t cap = interval_s_ > kBackoffMaxS ? interval_s_ : kBackoffMaxS;
    for (uint32_t i = 0; i < failures_; i++) sleep_s = sleep_s > cap / 2 ? cap : sleep_s * 2;
  } else {
    failures_ = 0;
  }
  WakeState w{};
  w.next_seqn = seq_.peek();
  w.bound = seq_.bound();
  w.ack = downlink_.last();
  w.cfgsn = cfgsn_;
  w.interval_s = interval_s_;
  w.wakes = wakes_ + 1;
  w.registered = registered_ ? 1 : 0;
  w.failures = uint8_t(failures_);
  // The server showed it has the rekeyed key (an answer sealed under it): the next wakes need not send its public key.
  w.spare[0] = keys_.send_epk ? 0 : 1;
  w.spare[1] = uint8_t(keys_.kv);
  actions_.network_memory(w.network, sizeof(w.network));
  if (!w.save(*rtc_)) say(E2EE_TEXT("RTC memory cannot be written: the next wake starts as after a power-on"));
  const uint32_t awake = clock_.millis() - wake_ms_;
  // The period is kept from wake to wake: the time awake comes off the sleep.
  sleep_ms_ = sleep_s * 1000u > awake + 1000u ? sleep_s * 1000u - awake : 1000u;
  say(E2EE_TEXT("wake %lu: awake %lu ms, %lu exchange%s, %s; sleeping %lu s"), static_cast<unsigned long>(w.wakes), static_cast<unsigned long>(awake),
      static_cast<unsigned long>(exchanges_), exchanges_ == 1 ? "" : "s", why, static_cast<unsigned long>((sleep_ms_ + 500) / 1000));
  asleep_ = true;
}

Device::Outcome Device::uplink(MsgType kind, bool *more) {
  UplinkState u{kind, settings_.auth == Auth::HmacSha256, false, false, 0, 0, {}};
  // Plain mode registers and polls in plain JSON (the seed's protocol); everything else is sealed, with a SEQN (and,
  // with hmac, the ack of the last accepted command).
  u.sealed = u.hmac || kind == MsgType::Reading;
  snprintf(u.what, sizeof(u.what), kind == MsgType::Register ? E2EE_TEXT("register as %s") : E2EE_TEXT("config poll"), settings_.id);
  const Built built = build_uplink(&u);
  if (built == Built::Nothing) return Outcome::Done;
  if (!reserve_seqn(&u)) return Outcome::Refused;
  if (built != Built::Ok || !seal_uplink(&u)) {
    say(E2EE_TEXT("%s: does not fit the buffers"), u.what);
    return Outcome::Refused;
  }
  size_t got = 0;
  // Every sealed uplink carries the ack: none is due after this one.
  if (u.hmac) ack_due_ = false;
  // A config answer comes back to a poll, a sealed registration, and a sleeper's reading.
  u.answer = kind == MsgType::Poll || (u.hmac && kind == MsgType::Register) || (kind == MsgType::Reading && settings_.sleep_s > 0);
  awaiting_ = u.answer;
  awaiting_seqn_ = u.seqn;
  int code = exchange_uplink(u, &got);
  awaiting_ = false;
  const bool answered = code == 200 || code == 201;
  if (answered && u.answer && !accept_answer(got, u.seqn, more)) {
    say(E2EE_TEXT("%s: answer refused (not authentic or not ours)"), u.what);
    code = kAnswerRefused;
  }
  return settle_uplink(u, code);
}

Device::Built Device::build_uplink(UplinkState *u) {
  char *out = u->sealed ? buf_.plain : buf_.body;
  const size_t out_size = u->sealed ? buf_.plain_size : buf_.body_size;
  bool ok = true;
  if (u->kind == MsgType::Register) {
    // rxbuf: the backend keeps every answer within it (in plain mode offering a command counts as delivering it).
    char ip[48];
    char ssid[33];
    actions_.address(ip, sizeof(ip), ssid, sizeof(ssid));
    json_safe(ip, ip, sizeof(ip));
    json_safe(ssid, ssid, sizeof(ssid));
    // A sleeper says so, and for how long: its readings are then answered with the config, and it is not late
    // before two wakes were missed.
    char sleep[24] = "";
    if (settings_.sleep_s > 0) snprintf(sleep, sizeof(sleep), E2EE_TEXT(",\"sleep\":%lu"), static_cast<unsigned long>(interval_s_));
    const int head = snprintf(out, out_size, E2EE_TEXT("{\"ipaddr\":\"%s\",\"ssid\":\"%s\",\"cmdport\":%u,\"rxbuf\":%u%s%s"), ip, ssid,
                              unsigned(settings_.cmdport), unsigned(buf_.rx_size - 1), sleep, u->sealed ? "," : "}");
    ok = head > 0 && size_t(head) < out_size;
    u->len = ok ? size_t(head) : 0;
  } else if (u->kind == MsgType::Reading) {
    char data[128];
    const char *sample = data;
    if (settings_.sleep_s > 0) {
      // Read at the start of the wake; sent once.
      if (!have_sample_) return Built::Nothing;
      have_sample_ = false;
      sample = sample_;
    } else if (!actions_.sample(data, sizeof(data))) {
      return Built::Nothing;
    }
    ok = append(out, out_size, &u->len, "{\"data\":") && append(out, out_size, &u->len, sample) && append(out, out_size, &u->len, ",");
    if (ok && settings_.sleep_s > 0) {
      char sleep[24];
      snprintf(sleep, sizeof(sleep), E2EE_TEXT("\"sleep\":%lu,"), static_cast<unsigned long>(interval_s_));
      ok = append(out, out_size, &u->len, sleep);
    }
  } else if (u->hmac) {
    ok = append(out, out_size, &u->len, "{");
  }
  return ok ? Built::Ok : Built::TooLarge;
}

bool Device::reserve_seqn(UplinkState *u) {
  if (!u->sealed) return true;
  if (!seq_.next(&u->seqn)) {
    say(E2EE_TEXT("storage: the flash cannot be written"));
    return false;
  }
  if (u->kind == MsgType::Reading) snprintf(u->what, sizeof(u->what), E2EE_TEXT("reading SEQN %s"), Num(u->seqn).s);
  return true;
}

bool Device::seal_uplink(UplinkState *u) {
  if (!u->sealed) return true;
  return finish_uplink(buf_.plain, buf_.plain_size, &u->len, u->seqn, u->hmac, downlink_.last()) &&
         seal(keys_, u->kind, settings_.id, reinterpret_cast<const uint8_t *>(buf_.plain), u->len, random_, buf_.work, buf_.work_size,
              buf_.body, buf_.body_size, &u->len);
}

int Device::exchange_uplink(const UplinkState &u, size_t *got) {
  exchanges_++;
  const int code = transport_.exchange(Uplink{u.kind, u.sealed, buf_.body, u.len, u.answer}, buf_.rx, buf_.rx_size, got);
  // Nothing was sent: the number is still unused, so the next uplink takes it.
  if (u.sealed && code == kHttpConnectFailed) seq_.give_back(u.seqn);
  if (code == kHttpTooLarge) {
    say(E2EE_TEXT("%s: answer larger than the %u-byte buffer"), u.what, unsigned(buf_.rx_size - 1));
  } else if (code == kHttpTruncated) {
    say(E2EE_TEXT("%s: answer cut short"), u.what);
  } else if (code < 0) {
    say(E2EE_TEXT("%s: %s %d (%s): is %s up and reachable?"), u.what, transport_.name(), code, transport_.error_text(code), transport_.where());
  } else if (u.kind != MsgType::Poll || code != 200) {
    say(E2EE_TEXT("%s: %s %d"), u.what, transport_.name(), code);
  }
  return code;
}

Device::Outcome Device::settle_uplink(const UplinkState &u, int code) {
  if (u.kind != MsgType::Poll && refusals_.record(code)) {
    say(E2EE_TEXT("%u refused in a row (HTTP 400): another key or auth mode in secrets.h than in the backend, or a SEQN behind it (after a "
        "flash erase: POST /api/devices/%s/reset)"), unsigned(kRefusalHint), settings_.id);
  }
  if (code == 404 || u.kind == MsgType::Register) registered_ = code == 200 || code == 201;
  if (code == 200 || code == 201 || code == kSent) return Outcome::Done;
  // No answer, a busy or failing backend (503 while its database is down, 429 over a rate limit): back off.
  if ((code < 0 && code != kHttpTooLarge) || code == 429 || code >= 500) return Outcome::Unreachable;
  return Outcome::Refused;
}

bool Device::is_answer(const char *payload, size_t len, uint64_t n) {
  size_t got = 0;
  uint64_t re = 0;
  return settings_.auth == Auth::HmacSha256 &&
         open(keys_, MsgType::Config, settings_.id, payload, len, buf_.opened, buf_.opened_size, &got) == OpenStatus::Ok &&
         json_uint(reinterpret_cast<const char *>(buf_.opened), got, "re", &re) && re == n;
}

bool Device::downlink(const char *payload, size_t len) {
  if (awaiting_ && is_answer(payload, len, awaiting_seqn_)) return true;
  // A late or recorded config answer: it verifies, but answers nothing under way. Dropped without a word.
  size_t got = 0;
  if (settings_.auth == Auth::HmacSha256 &&
      open(keys_, MsgType::Config, settings_.id, payload, len, buf_.opened, buf_.opened_size, &got) == OpenStatus::Ok) {
    return false;
  }
  if (len >= buf_.body_size) {
    say(E2EE_TEXT("command via mqtt refused: too large"));
    return false;
  }
  const uint64_t before = downlink_.last();
  handle_command(payload, len, E2EE_TEXT("mqtt"));
  if (downlink_.last() != before) ack_due_ = true;
  return false;
}

bool Device::accept_answer(size_t got, uint64_t n, bool *more) {
  got = got < buf_.rx_size ? got : buf_.rx_size - 1;
  buf_.rx[got] = '\0';
  const char *text = buf_.rx;
  size_t len = got;
  if (settings_.auth == Auth::HmacSha256) {
    // Applied only when it verifies as a config answer under this device's key and answers this very request.
    uint64_t re = 0;
    if (open(keys_, MsgType::Config, settings_.id, buf_.rx, got, buf_.opened, buf_.opened_size, &len) != OpenStatus::Ok) return false;
    text = reinterpret_cast<const char *>(buf_.opened);
    if (!json_uint(text, len, "re", &re) || re != n) return false;
    // Sealed under the key a rekey made: the server has it, its public key need not travel any more.
    keys_.send_epk = false;
  }
  uint64_t sn = 0;
  Span span;
  if (json_uint(text, len, "cfgsn", &sn) && sn != cfgsn_) {
    cfgsn_ = sn;
    if (json_member(text, len, "data", &span)) apply_settings(span.ptr, span.len);
    say(E2EE_TEXT("config %s: interval %lu s"), Num(cfgsn_).s, static_cast<unsigned long>(interval_s_));
  }
  bool all_taken = true;
  if (json_member(text, len, "commands", &span)) {
    Span item;
    for (size_t i = 0; json_array_item(span.ptr, span.len, i, &item); i++) all_taken = handle_command(item.ptr, item.len, E2EE_TEXT("poll")) && all_taken;
  }
  // Poll again only when this answer's commands were all taken: else the same ones would come again.
  bool waiting = false;
  if (more && json_bool(text, len, "more", &waiting)) *more = waiting && all_taken;
  return true;
}

void Device::apply_settings(const char *json, size_t len) {
  // The settings this firmware knows; others are ignored.
  uint64_t interval = 0;
  bool led = false;
  if (json_uint(json, len, "interval", &interval) && interval > 0 && interval < 86400) {
    interval_s_ = uint32_t(interval);
    rescale_block();
  }
  if (json_bool(json, len, "led", &led)) actions_.led(led);
}

bool Device::handle_command(const char *text, size_t len, const char *via) {
  Command cmd;
  const CommandStatus st = downlink_.accept(keys_, settings_.id, text, len, buf_.work, buf_.work_size, &cmd);
  if (st == CommandStatus::Rekey && awaiting_) {
    // The answer under way is sealed under the current key: a new key now would refuse it. The rekey comes again
    // in that answer (every unacknowledged command does) and is taken there, after the answer verified.
    return false;
  }
  if (st == CommandStatus::Rekey) return take_rekey(cmd, via);
  if (st != CommandStatus::Ok) {
    say(E2EE_TEXT("command via %s refused: %s"), via, status_text(st));
    // A replay is a command offered again until the backend sees the ack: already done.
    return st == CommandStatus::Replay;
  }
  apply_settings(cmd.cmd.ptr, cmd.cmd.len);
  say(E2EE_TEXT("command %s via %s: %.*s"), Num(cmd.seqn).s, via, int(cmd.cmd.len), cmd.cmd.ptr);
  return true;
}

bool Device::take_rekey(const Command &cmd, const char *via) {
  // Our half of the X25519 exchange and the new key; then to flash (with the command's SEQN and our public key), then
  // the SEQN as ack: acknowledged only once kept. A reboot before the key is kept gets the command again, and makes
  // another key pair: the server's stays the same until the rekey completes.
  uint8_t key[kDeviceKeyLen];
  uint8_t pub[kX25519Len];
  const bool derived = rekey_derive(keys_, settings_.id, cmd.rekey_kv, cmd.rekey_pub, random_, key, pub);
  if (!derived || !key_record_.save(cmd.rekey_kv, key, cmd.seqn, pub) || !downlink_.commit(cmd.seqn)) {
    memset(key, 0, sizeof(key));
    say(E2EE_TEXT("command %s via %s refused: %s"), Num(cmd.seqn).s, via, derived ? E2EE_TEXT("flash write failed") : E2EE_TEXT("bad command"));
    return false;
  }
  keys_init(&keys_, key, sizeof(key), Auth::HmacSha256);
  memset(key, 0, sizeof(key));
  keys_.kv = cmd.rekey_kv;
  memcpy(keys_.epk, pub, kX25519Len);
  keys_.send_epk = true;
  say(E2EE_TEXT("command %s via %s: rekey to key version %lu"), Num(cmd.seqn).s, via, static_cast<unsigned long>(cmd.rekey_kv));
  return true;
}

int Device::on_push(const char *body, size_t len) {
  if (len == 0 || len >= buf_.body_size) return 413;
  const uint64_t before = downlink_.last();
  handle_command(body, len, E2EE_TEXT("push"));
  return downlink_.last() != before ? 200 : 400;
}

}  // namespace e2ee
