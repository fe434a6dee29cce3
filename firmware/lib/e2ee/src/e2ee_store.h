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
  virtual ~Flash() = default;
  virtual size_t size() const = 0;
  virtual uint8_t read(size_t addr) const = 0;
  virtual void write(size_t addr, uint8_t value) = 0;
  /// Makes what was written persistent; false when the flash write failed.
  virtual bool commit() = 0;
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
  Slot(Flash &flash, size_t addr, uint32_t magic, size_t len) : flash_(flash), addr_(addr), magic_(magic), len_(len) {}
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

/// A 64-bit counter in a slot of its own: the CounterStore of SeqCounter and DownlinkGuard. A slot that is not Ok
/// loads as "nothing stored" (the counter starts at 0) and state() says why.
class SlotCounter : public CounterStore {
 public:
  SlotCounter(Flash &flash, size_t addr, uint32_t magic) : slot_(flash, addr, magic, 8) {}
  static constexpr size_t kFootprint = Slot::footprint(8);
  bool load(uint64_t *value) override;
  bool save(uint64_t value) override;
  /// The state the last load found (Ok before any load).
  SlotState state() const { return state_; }
  /// After a load that found no valid record: writes 0, so the slot is valid from now on and the damage is reported
  /// at one boot only. True when the slot was valid or now is.
  bool repair();

 private:
  Slot slot_;
  SlotState state_ = SlotState::Ok;
};

/// The key a rekey gave the device: its version and 16 bytes, in a slot of its own.
class KeySlot {
 public:
  KeySlot(Flash &flash, size_t addr, uint32_t magic) : slot_(flash, addr, magic, 20) {}
  static constexpr size_t kFootprint = Slot::footprint(20);
  /// Ok with the stored version and key, or why there is none.
  SlotState load(uint32_t *version, uint8_t key[16]) const;
  bool save(uint32_t version, const uint8_t key[16]);

 private:
  Slot slot_;
};

}  // namespace e2ee
