#pragma once
/// Persistent storage that survives anything: each value lives in its own slot, a record with a magic number and
/// a CRC-32, so an erased (all 0xFF), zeroed, half-written or foreign EEPROM is detected per slot and initialised
/// safely instead of being read as a value. Flash is the byte store underneath (the ESP8266 core's EEPROM
/// emulation on the device, memory in the host tests). No heap; the slot layout is the caller's.
#include <stddef.h>
#include <stdint.h>

#include "e2ee_wire.h"

namespace e2ee {

/// Bytes that persist: read and write a RAM image, then commit it (EEPROM.read/write/commit on the ESP8266).
class Flash {
 public:
  virtual size_t size() const = 0;
  virtual uint8_t read(size_t addr) const = 0;
  virtual void write(size_t addr, uint8_t value) = 0;
  /// Makes what was written persistent; false when the flash write failed.
  virtual bool commit() = 0;

 protected:
  ~Flash() = default;  // not deleted through this interface: no virtual destructor, no operator delete
};

/// What a slot held at boot.
enum class SlotState : uint8_t {
  Ok,       ///< a valid record
  Erased,   ///< every byte 0xFF: a new module, or after erase_flash
  Zeroed,   ///< every byte 0x00
  Corrupt,  ///< anything else: a wrong magic (another firmware's data), a CRC mismatch (a write cut short)
};

/// "ok", "erased", "zeroed", "corrupt".
const char *slot_state_name(SlotState state);

/// CRC-32 (IEEE 802.3, as zlib), continuing from crc (0 to start).
uint32_t crc32(const uint8_t *data, size_t len, uint32_t crc = 0);

/// One record: magic (4 bytes, little-endian) | payload (len bytes) | CRC-32 of magic and payload (4 bytes).
class Slot {
 public:
  /// The largest payload a slot holds.
  static constexpr size_t kMaxLen = 72;
  Slot(Flash &flash, size_t addr, uint32_t magic, size_t len) : flash_(flash), addr_(addr), magic_(magic), len_(len) {}
  bool commit() const { return flash_.commit(); }
  /// Writes 0xFF over the record (no commit).
  void erase() const {
    for (size_t i = 0; i < footprint(len_) && addr_ + i < flash_.size(); i++) flash_.write(addr_ + i, 0xFF);
  }
  /// Bytes the slot occupies.
  static constexpr size_t footprint(size_t len) { return len + 8; }
  /// Reads the record; payload (len bytes) is filled only when the state is Ok.
  SlotState load(uint8_t *payload) const;
  /// Writes the record and commits; false when it does not fit the flash or the commit failed.
  bool save(const uint8_t *payload);

 private:
  Flash &flash_;
  size_t addr_;
  uint32_t magic_;
  size_t len_;
};

/// Two copies of a record, written alternately, each carrying a generation number: a write cut short damages only
/// the copy being written, so the other still holds the value from before it. load() reads the newest valid copy.
class SlotPair {
 public:
  static constexpr size_t kMaxLen = 64;
  SlotPair(Flash &flash, size_t addr, uint32_t magic, size_t len)
      : a_(flash, addr, magic, len + 4), b_(flash, addr + Slot::footprint(len + 4), magic, len + 4), len_(len) {}
  static constexpr size_t footprint(size_t len) { return 2 * Slot::footprint(len + 4); }
  /// Ok with the payload of the newest valid copy; else what the copies hold (Erased, Zeroed, Corrupt).
  /// *lost_newer is set when a copy is damaged while the other is valid: the damaged one may have been the newer.
  SlotState load(uint8_t *payload, bool *lost_newer);
  /// Writes the copy that is not the newest, with the next generation, and commits.
  bool save(const uint8_t *payload);
  /// Writes both copies (after damage), so the next boot finds both valid.
  bool save_both(const uint8_t *payload) { return save(payload) && save(payload); }
  /// Erases both copies (0xFF) and commits: the pair then loads as Erased.
  bool erase();

 private:
  Slot a_;
  Slot b_;
  size_t len_;
  uint32_t generation_ = 0;
  bool next_is_b_ = false;
};

/// A 64-bit counter in a slot pair of its own: the CounterStore of SeqCounter and DownlinkGuard. A pair without a
/// valid copy loads as "nothing stored" (the counter starts at 0) and state() says why.
class SlotCounter : public CounterStore {
 public:
  SlotCounter(Flash &flash, size_t addr, uint32_t magic) : pair_(flash, addr, magic, 8) {}
  static constexpr size_t kFootprint = SlotPair::footprint(8);
  bool load(uint64_t *value) override;
  bool save(uint64_t value) override;
  bool lost_newer() const override { return lost_newer_; }
  /// The state the last load found (Ok before any load).
  SlotState state() const { return state_; }
  /// After a load that found damage: writes both copies with the value loaded (0 when none was valid), so the
  /// damage is reported at one boot only. True when nothing was damaged or the pair is whole again.
  bool repair();

 private:
  SlotPair pair_;
  SlotState state_ = SlotState::Ok;
  bool lost_newer_ = false;
  uint64_t value_ = 0;
};

/// The key a rekey gave the device: its version, 16 bytes, the SEQN of the rekey command and the device's X25519 public
/// key of that rekey, in a slot pair of its own. Storing it is the moment the rekey is accepted: a device that reboots
/// before it stores the SEQN as its ack takes the SEQN from here (it could not open that command again under the new
/// key), and it sends the public key again until the server shows it has the key.
class KeySlot {
 public:
  static constexpr size_t kLen = 4 + kDeviceKeyLen + 8 + kX25519Len;
  KeySlot(Flash &flash, size_t addr, uint32_t magic) : pair_(flash, addr, magic, kLen) {}
  static constexpr size_t kFootprint = SlotPair::footprint(kLen);
  /// Ok with the stored version, key, command SEQN and public key, or why there is none. *lost_newer as SlotPair::load.
  SlotState load(uint32_t *version, uint8_t key[kDeviceKeyLen], uint64_t *seqn, uint8_t pub[kX25519Len], bool *lost_newer);
  /// Writes the record (both copies with both: a repair after damage, as SlotPair::save_both).
  bool save(uint32_t version, const uint8_t key[kDeviceKeyLen], uint64_t seqn, const uint8_t pub[kX25519Len], bool both = false);
  /// Forgets a damaged record, so that it is reported at one boot only.
  bool erase() { return pair_.erase(); }

 private:
  SlotPair pair_;
};

}  // namespace e2ee
