#pragma once
/// The wire format shared with the Node-RED nodes (the package README, "Wire format"):
///   reading plaintext  {"data":{...},"SEQN":n[,"ack":a]}
///   command plaintext  {"cmd":{...},"SEQN":n}  or a rekey  {"rekey":{"kv":v,"pub":"<64 hex>"},"SEQN":n}
///   body               {"iv":"<b64>","data":"<b64>"[,"mac":"<b64>"][,"kv":v][,"epk":"<b64>"]}
/// The message type (MsgType) is bound into the MAC; kv is the per-device key version.
#include <stddef.h>
#include <stdint.h>

#include "e2ee_crypto.h"
#include "e2ee_json.h"

namespace e2ee {

/// Writes the decimal text of v (NUL-terminated) into buf and returns its length (printf's %llu is not everywhere).
size_t u64_text(uint64_t v, char buf[21]);

/// Appends text at out[*pos..] (NUL-terminated, *pos advanced); false when it does not fit.
bool append(char *out, size_t out_size, size_t *pos, const char *text);

/// Ends an uplink plaintext at out[*pos..]: "SEQN":<seqn>, then ,"ack":<ack> when with_ack, then }.
bool finish_uplink(char *out, size_t out_size, size_t *pos, uint64_t seqn, bool with_ack, uint64_t ack);

/// Writes {"data":<data_json>,"SEQN":<seqn>} (NUL-terminated). data_json must be a JSON object.
/// Returns false when out_size is too small.
bool build_reading(const char *data_json, uint64_t seqn, char *out, size_t out_size, size_t *out_len);

/// Writes {"data":<data_json>,"SEQN":<seqn>,"ack":<ack>} (the acknowledgement of the last accepted downlink SEQN).
bool build_reading_ack(const char *data_json, uint64_t seqn, uint64_t ack, char *out, size_t out_size, size_t *out_len);

/// Body length for a plaintext of len bytes (without the NUL), with these keys (auth mode, kv).
size_t body_len(size_t len, const Keys &keys);

/// Encrypts plaintext[0..len) as a message of the given type and writes the body (NUL-terminated)
/// into out. work is scratch for the padded ciphertext: work_size >= padded_len(len).
/// out_size must be >= body_len(len, keys) + 1. The IV comes from random.
bool seal(const Keys &keys, MsgType type, const char *deviceid, const uint8_t *plaintext, size_t len, RandomFn random,
          uint8_t *work, size_t work_size, char *out, size_t out_size, size_t *out_len);

/// Same with a given IV (tests, vectors).
bool seal_with_iv(const Keys &keys, MsgType type, const char *deviceid, const uint8_t *plaintext, size_t len, const uint8_t iv[kIvLen],
                  uint8_t *work, size_t work_size, char *out, size_t out_size, size_t *out_len);

enum class OpenStatus : uint8_t {
  Ok,
  BadBody,    ///< not the {"iv","data"[,"mac"]} shape, bad base64, IV not 16 bytes, too large
  Rejected,   ///< MAC, padding or key wrong: one status for all, so no oracle
};

/// Verifies (MAC first, in constant time, as the given type) and decrypts a body into out,
/// NUL-terminated. out_size must be >= the decoded ciphertext length + 1.
OpenStatus open(const Keys &keys, MsgType type, const char *deviceid, const char *body, size_t body_len,
                uint8_t *out, size_t out_size, size_t *out_len);

/// Persistent storage of one 64-bit value: flash/EEPROM on the device, memory in tests.
class CounterStore {
 public:
  /// False when nothing was stored yet or the storage cannot be read.
  virtual bool load(uint64_t *value) = 0;
  virtual bool save(uint64_t value) = 0;
  /// True after a load that may have missed the newest value (a damaged copy): SeqCounter then skips a block ahead.
  virtual bool lost_newer() const { return false; }

 protected:
  ~CounterStore() = default;  // not deleted through this interface: no virtual destructor, no operator delete
};

/// Uplink sequence numbers that survive reboots with little flash wear (as OSCORE and
/// LoRaWAN devices do): a block of `block` numbers is reserved by one write; after a reboot
/// counting resumes at the reserved bound, so no number is ever used twice.
class SeqCounter {
 public:
  SeqCounter(CounterStore &store, uint32_t block) : store_(store), block_(block ? block : 1) {}
  /// Reads the stored bound. Call once at boot.
  void begin();
  /// The next number; false when a new block could not be reserved (then no number is handed out).
  bool next(uint64_t *out);
  /// Takes back n, the number next() handed out last, when it was never sent (no connection was made): next() hands
  /// it out again. Any other number is left alone.
  void give_back(uint64_t n) {
    if (n + 1 == next_) next_ = n;
  }
  /// Continues at next, a number kept outside flash (RTC memory across deep sleep) instead of at the stored bound, so
  /// a wake costs no flash write. Refused (false, nothing changed) above the stored bound: that state is not ours.
  bool resume(uint64_t next) {
    if (next > bound_) return false;
    next_ = next;
    return true;
  }
  /// Numbers reserved by each later flash write (at least 1).
  void set_block(uint32_t block) { block_ = block ? block : 1; }
  uint32_t block() const { return block_; }
  uint64_t peek() const { return next_; }
  uint64_t bound() const { return bound_; }
  uint32_t writes() const { return writes_; }

 private:
  CounterStore &store_;
  uint32_t block_;
  uint64_t next_ = 0;
  uint64_t bound_ = 0;
  uint32_t writes_ = 0;
};

enum class CommandStatus : uint8_t { Ok, BadBody, Rejected, BadCommand, Replay, StoreFailed, Rekey };

struct Command {
  uint64_t seqn;
  /// The "cmd" object's JSON text, inside the caller's buffer (empty for a rekey).
  Span cmd;
  /// A rekey (status Rekey): the new key version and the server's X25519 public key for it.
  uint32_t rekey_kv;
  uint8_t rekey_pub[kX25519Len];
};

/// Downlink replay check: a command is accepted only with a SEQN above the last accepted
/// one, which is persisted before the command is acted on.
class DownlinkGuard {
 public:
  explicit DownlinkGuard(CounterStore &store) : store_(store) {}
  void begin();
  uint64_t last() const { return last_; }
  /// Opens, checks and accepts a command body. work holds the plaintext afterwards
  /// (work_size >= decoded ciphertext length + 1); out->cmd points into it.
  /// A rekey command returns Rekey without accepting its SEQN: the caller derives and stores the new
  /// key first, then calls commit(out->seqn), so the key is on flash before it is acknowledged.
  CommandStatus accept(const Keys &keys, const char *deviceid, const char *body, size_t body_len,
                       uint8_t *work, size_t work_size, Command *out);
  /// Accepts a SEQN (after a rekey's key is stored). False when it cannot be stored.
  bool commit(uint64_t seqn);

 private:
  CounterStore &store_;
  uint64_t last_ = 0;
};

}  // namespace e2ee
