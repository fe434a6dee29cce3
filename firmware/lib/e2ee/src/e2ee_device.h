#pragma once
/// The device's whole behaviour, without the Arduino: boot and storage checks, registration, the schedule of readings
/// and config polls, config and commands (polled or pushed), acknowledgements, rekey, backoff and every line it says.
/// It talks to the small interfaces below and to a Transport (e2ee_transport.h: HTTP or MQTT); src/main.cpp implements
/// them with the ESP8266 core's classes and PubSubClient, the host tests with a fake backend and a fake broker. No heap: the buffers are the caller's (DeviceBuffers).
#include <stddef.h>
#include <stdint.h>

#include "e2ee_owner.h"
#include "e2ee_store.h"
#include "e2ee_transport.h"
#include "e2ee_wire.h"

namespace e2ee {

/// Where the device's lines go (Serial on the device). Each call is one line, without its newline.
class LogSink {
 public:
  virtual void line(const char *text) = 0;

 protected:
  ~LogSink() = default;  // not deleted through this interface: no virtual destructor, no operator delete
};

/// The board: the network, the sensor and the LED.
class Actions {
 public:
  /// Joins the network if needed (saying how it goes); false when it is not up.
  virtual bool network_up() = 0;
  /// The device's address and network name, for the registration.
  virtual void address(char *ip, size_t ip_size, char *ssid, size_t ssid_size) = 0;
  /// The reading's data as a JSON object; false when there is nothing to send.
  virtual bool sample(char *json, size_t size) = 0;
  virtual void led(bool on) = 0;
  /// Sleepers: up to len bytes the board wants back at the next wake to reconnect fast (the access point's BSSID and
  /// channel, the IP lease), kept in RTC memory while the device sleeps.
  virtual void network_memory(uint8_t *out, size_t len) {
    for (size_t i = 0; i < len; i++) out[i] = 0;
  }
  /// At a wake from deep sleep: what network_memory gave before the sleep (all zero after a power-on).
  virtual void network_recall(const uint8_t *in, size_t len) {
    (void)in;
    (void)len;
  }

 protected:
  ~Actions() = default;  // not deleted through this interface: no virtual destructor, no operator delete
};

/// What secrets.h and the build set.
struct DeviceSettings {
  const char *id;           ///< E2EE_DEVICE_ID, else the MAC address (at most 64 characters)
  const char *key_hex;      ///< E2EE_KEY_HEX
  Auth auth;                ///< E2EE_AUTH_HMAC ? HmacSha256 : None (the seed-compatible plain mode)
  uint32_t key_version;     ///< E2EE_KEY_VERSION (hmac): the version of key_hex; a rekeyed key in flash wins when newer
  uint32_t interval_s;      ///< E2EE_INTERVAL_S: seconds between readings, until the config says otherwise
  uint16_t cmdport;         ///< the port of the device's POST /command
  bool sample_secrets;      ///< built with include/secrets.example.h
  uint32_t sleep_s;         ///< E2EE_SLEEP_S: a battery device that deep-sleeps between readings (0: always on)
};

/// The caller's buffers. rx_size - 1 is declared to the backend as rxbuf, so no config answer is larger.
struct DeviceBuffers {
  char *rx;           ///< a config answer as received
  size_t rx_size;
  uint8_t *opened;    ///< the opened config answer (hmac; may be null in plain mode)
  size_t opened_size;
  char *body;         ///< an uplink's sealed body; bodies of pushed commands must be shorter
  size_t body_size;
  char *plain;        ///< an uplink's plaintext
  size_t plain_size;
  uint8_t *work;      ///< scratch: the padded ciphertext of an uplink, an opened command
  size_t work_size;
};

/// The journal's flash (e2ee_store.h) and how many uplink SEQNs one write reserves.
struct StorageLayout {
  /// Sectors the journal turns over (16 KiB): each is erased once every 4 sector-fulls of records.
  static constexpr size_t kSectors = 4;
  static constexpr uint32_t kMinBlock = 32;
  static constexpr uint32_t kMaxBlock = 4096;
  /// Numbers one flash write reserves: about an hour of uplinks (two a cycle) at this interval, 32 to 4,096. A
  /// reboot skips at most that many (the backend accepts any higher SEQN); at interval 1 s, one write per 34 minutes.
  static constexpr uint32_t seq_block(uint32_t interval_s) {
    return interval_s == 0 ? kMaxBlock : 7200 / interval_s > kMaxBlock ? kMaxBlock : 7200 / interval_s < kMinBlock ? kMinBlock : 7200 / interval_s;
  }
};

/// The device. Call begin() once from setup(), then loop() and on_push() from loop().
class Device : public Downlinks {
 public:
  /// settings and buffers are kept by reference: they must outlive the device (static in the sketch).
  /// rtc: the RTC user memory; needed by a sleeper (settings.sleep_s > 0), unused otherwise.
  Device(const DeviceSettings &settings, const DeviceBuffers &buffers, Flash &flash, Transport &transport, Clock &clock, RandomFn random,
         LogSink &log, Actions &actions, RtcMemory *rtc = nullptr);

  /// Reads and repairs the storage, checks the settings, takes a rekeyed key. False, after saying why, when a setting
  /// cannot work (the sketch then halts).
  bool begin();
  /// Does what is due: registration, a reading and the config poll every interval; after failures, a bounded backoff.
  /// A sleeper does one wake's work (a reading whose answer is the config answer, a poll only when more commands
  /// wait), keeps its state in RTC memory and then is asleep(): the sketch calls ESP.deepSleep(sleep_ms() * 1000).
  void loop();
  /// A sleeper whose wake is over.
  bool asleep() const { return asleep_; }
  /// How long it sleeps now.
  uint32_t sleep_ms() const { return sleep_ms_; }
  /// This wake's work: exchanges made (uplinks sent) and flash writes and erases (the journal's).
  uint32_t exchanges() const { return exchanges_; }
  uint32_t flash_writes() const { return journal_.writes(); }
  uint32_t flash_erases() const { return journal_.erases(); }
  bool woke() const { return woke_; }
  /// A command pushed to POST /command: the HTTP status to answer (200 accepted, 400 refused, 413 too large).
  int on_push(const char *body, size_t len);
  /// A downlink from the transport (MQTT's `down`): true when it is the config answer to the uplink under way;
  /// a command is taken (and acknowledged by a poll at once), anything else dropped.
  bool downlink(const char *payload, size_t len) override;

  /// Milliseconds until the next cycle, from the last one.
  uint32_t wait_ms() const { return wait_ms_; }
  bool registered() const { return registered_; }
  uint32_t interval_s() const { return interval_s_; }
  uint64_t cfgsn() const { return cfgsn_; }
  uint64_t ack() const { return downlink_.last(); }
  int64_t key_version() const { return keys_.kv; }
  const char *backend_url() const { return transport_.where(); }

  /// Unanswered exchanges in a row after which the wait stops growing; the longest wait (without jitter) is
  /// interval × 2^kBackoffSteps, at most kBackoffMaxS unless the interval itself is longer.
  static constexpr uint32_t kBackoffSteps = 5;
  static constexpr uint32_t kBackoffMaxS = 300;
  /// After this many registrations and readings in a row refused with HTTP 400, say what that usually means.
  static constexpr uint32_t kRefusalHint = 5;
  /// Config polls in one cycle while the answer says more commands wait.
  static constexpr uint32_t kMorePolls = 4;
  /// A sleeper waits this long for the network before it sleeps again (and backs off).
  static constexpr uint32_t kWakeNetworkMs = 8000;
  /// Over MQTT, a sleeper waits this long after its exchange for commands the broker queued while it slept.
  static constexpr uint32_t kLingerMs = 100;

 private:
  enum class Outcome : uint8_t { Done, Refused, Unreachable };

  void say(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
  void cycle();
  /// A sleeper's wake: the exchanges, then its state into RTC memory, then asleep_.
  void wake_cycle(bool network);
  /// A sleeper's boot: the state kept in RTC memory when it is valid and ours; the sensor read at once.
  void resume_wake();
  /// The numbers the next flash write reserves follow the interval.
  void rescale_block() { seq_.set_block(StorageLayout::seq_block(interval_s_)); }
  /// One uplink in the making: what it is, its length so far, its SEQN, and how the log names it.
  struct UplinkState {
    MsgType kind;
    bool hmac;     ///< sealed with a MAC and carries the ack
    bool sealed;   ///< encrypted with a SEQN (everything but plain mode's registration and poll)
    bool answer;   ///< a config answer comes back
    size_t len;    ///< bytes in buf_.plain (sealed) or buf_.body (plain), then of the sealed body
    uint64_t seqn; ///< its SEQN (sealed only)
    char what[96]; ///< "register as <id>", "config poll", "reading SEQN <n>"
  };
  enum class Built : uint8_t { Ok, Nothing, TooLarge };

  /// One uplink (Register, Reading or Poll), in its steps: build, reserve a SEQN, seal, exchange, open the answer
  /// (accept_answer), settle.
  Outcome uplink(MsgType kind, bool *more);
  /// Its JSON: into buf_.plain when sealed, else buf_.body. Nothing: no sample to send.
  Built build_uplink(UplinkState *u);
  /// The next uplink SEQN (sealed only); false when the counter cannot be stored (said).
  bool reserve_seqn(UplinkState *u);
  /// Adds the SEQN (and ack) and seals buf_.plain into buf_.body (sealed only); false when it does not fit.
  bool seal_uplink(UplinkState *u);
  /// Sends it through the transport and says how that went; an unsent uplink's SEQN goes back to the counter.
  int exchange_uplink(const UplinkState &u, size_t *got);
  /// The outcome of the exchange's code: the refusal streak, the registered flag, and whether to back off.
  Outcome settle_uplink(const UplinkState &u, int code);
  /// Whether a downlink is the config answer to request n: it verifies as one under this key and names n.
  bool is_answer(const char *payload, size_t len, uint64_t n);
  /// Checks a 200/201 answer to request n (sealed config in hmac mode) and applies it; false when refused.
  bool accept_answer(size_t got, uint64_t n, bool *more);
  void apply_settings(const char *json, size_t len);
  bool handle_command(const char *text, size_t len, const char *via);
  /// A rekey command: the X25519 exchange, the new key kept before the command is acknowledged.
  bool take_rekey(const Command &cmd, const char *via);

  const DeviceSettings &settings_;
  const DeviceBuffers &buf_;
  Transport &transport_;
  Clock &clock_;
  RandomFn random_;
  LogSink &log_;
  Actions &actions_;
  Journal journal_;
  JournalCounter uplink_store_;
  JournalCounter downlink_store_;
  KeyRecord key_record_;
  RtcMemory *rtc_;
  SeqCounter seq_;
  DownlinkGuard downlink_;
  RefusalStreak refusals_;
  Keys keys_;
  uint32_t interval_s_;
  uint32_t wait_ms_ = 0;
  uint32_t last_ms_ = 0;
  bool started_ = false;
  bool registered_ = false;
  uint32_t failures_ = 0;
  uint64_t cfgsn_ = 0;
  /// The SEQN of the registration or poll whose config answer the transport waits for (awaiting_).
  uint64_t awaiting_seqn_ = 0;
  bool awaiting_ = false;
  /// A command came outside a poll (MQTT): a poll carries its ack now rather than at the next cycle.
  bool ack_due_ = false;
  /// Sleepers: woken from deep sleep with a valid state in RTC memory; this wake is over; for how long it sleeps.
  bool woke_ = false;
  bool asleep_ = false;
  uint32_t sleep_ms_ = 0;
  uint32_t wake_ms_ = 0;
  uint32_t wakes_ = 0;
  uint32_t exchanges_ = 0;
  bool have_sample_ = false;
  char sample_[128] = {};
  uint8_t network_[sizeof(WakeState::network)] = {};
};

}  // namespace e2ee
