#pragma once
/// Persistent state that outlives the flash: a journal of small records appended to erased flash, over two or more
/// sectors used in turn (a log-structured store, as LittleFS and the SDK's own parameter sectors are). A value is
/// written by appending a record (a few bytes programmed, no erase); a sector is erased only when the one in use is
/// full, and the next then starts with a snapshot of every value. Each record and each sector header carries a CRC-32,
/// so a torn write or erase is detected and costs nothing that was committed. Also here: the RTC user memory that holds
/// the counters across deep sleep (a reset that keeps it) but not across power loss. No heap.
#include <stddef.h>
#include <stdint.h>

#include "e2ee_wire.h"

namespace e2ee {

/// Raw NOR flash, sector by sector (ESP.flashRead/flashWrite/flashEraseSector on the ESP8266, memory in the host
/// tests). Addresses count from the first of the journal's sectors.
class Flash {
 public:
  static constexpr size_t kSectorSize = 4096;
  virtual size_t sectors() const = 0;
  virtual bool read(size_t addr, uint8_t *out, size_t len) = 0;
  /// Programs len bytes at addr (both multiples of 4): as on NOR flash, bits only go from 1 to 0.
  virtual bool write(size_t addr, const uint8_t *data, size_t len) = 0;
  /// Sets a whole sector to 0xFF (the only way back to 1 bits, and what wears the flash).
  virtual bool erase(size_t sector) = 0;

 protected:
  ~Flash() = default;  // not deleted through this interface: no virtual destructor, no operator delete
};

/// What the journal held at boot.
enum class SlotState : uint8_t {
  Ok,       ///< a valid sector
  Erased,   ///< every sector header 0xFF: a new module, or after erase_flash
  Zeroed,   ///< every sector header 0x00
  Corrupt,  ///< anything else without a valid header: another firmware's data
};

/// "ok", "erased", "zeroed", "corrupt".
const char *slot_state_name(SlotState state);

/// CRC-32 (IEEE 802.3, as zlib), continuing from crc (0 to start).
uint32_t crc32(const uint8_t *data, size_t len, uint32_t crc = 0);

/// The values the journal keeps, each with a fixed length.
enum class JournalTag : uint8_t {
  Uplink = 1,  ///< the reserved uplink SEQN bound (8 bytes)
  Ack = 2,     ///< the last accepted command SEQN (8 bytes)
  Key = 3,     ///< a rekey's key record (KeyRecord::kLen bytes)
};

/// The journal. Sector layout: a 16-byte header (magic, generation, 0xFFFFFFFF, CRC-32 of those 12 bytes), then
/// records: tag, length, their complements (4 bytes) | payload, padded with 0xFF to 4 bytes | CRC-32 of both.
/// The sector with the newest valid header is the current one; the last valid record of each tag wins.
class Journal {
 public:
  static constexpr uint32_t kMagic = 0xE2EE4A31;  ///< "J1"
  static constexpr size_t kHeader = 16;
  static constexpr size_t kKeyLen = 4 + kDeviceKeyLen + 8 + kX25519Len;
  /// Bytes one record of a payload of len bytes takes in a sector.
  static constexpr size_t record_size(size_t len) { return 4 + ((len + 3) & ~size_t(3)) + 4; }
  /// Records of one 8-byte counter (16 bytes each) a sector holds: 255.
  static constexpr size_t kCounterRecordsPerSector = (Flash::kSectorSize - kHeader) / 16;

  explicit Journal(Flash &flash) : flash_(flash) {}
  /// Reads the current sector (call once at boot). Ok, or why there is none (then every value is absent).
  SlotState mount();
  /// A record of the current sector failed its check: a value written after it may be lost. (The next write goes to
  /// a fresh sector, so this is reported at one boot only.)
  bool damaged() const { return damaged_; }
  /// The tag's value (len must be its length); false when none was stored.
  bool get(JournalTag tag, uint8_t *out, size_t len) const;
  /// Appends the tag's value, or when the sector is full (or damaged), starts the next sector with every value.
  /// True once it is on flash; false, with the value unchanged, when the flash write failed.
  bool put(JournalTag tag, const uint8_t *value, size_t len);
  /// Writes every value into a fresh sector (after damage).
  bool compact() { return rotate(JournalTag(0), nullptr); }
  uint32_t erases() const { return erases_; }
  uint32_t writes() const { return writes_; }
  size_t sectors() const { return flash_.sectors(); }

 private:
  uint8_t *value_of(JournalTag tag, size_t *len);
  bool rotate(JournalTag tag, const uint8_t *value);
  bool append(size_t sector, size_t *pos, JournalTag tag, const uint8_t *value, size_t len);

  Flash &flash_;
  uint8_t uplink_[8] = {};
  uint8_t ack_[8] = {};
  uint8_t key_[kKeyLen] = {};
  uint8_t present_ = 0;  ///< bit (1 << tag) when the tag has a value
  bool mounted_ = false;
  bool damaged_ = false;
  bool have_sector_ = false;
  size_t sector_ = 0;
  size_t pos_ = 0;
  uint32_t generation_ = 0;
  uint32_t erases_ = 0;
  uint32_t writes_ = 0;
};

/// A 64-bit counter in the journal: the CounterStore of SeqCounter and DownlinkGuard.
class JournalCounter : public CounterStore {
 public:
  JournalCounter(Journal &journal, JournalTag tag) : journal_(journal), tag_(tag) {}
  bool load(uint64_t *value) override;
  bool save(uint64_t value) override;
  bool lost_newer() const override { return journal_.damaged(); }

 private:
  Journal &journal_;
  JournalTag tag_;
};

/// The key a rekey gave the device: its version, 16 bytes, the SEQN of the rekey command and the device's X25519 public
/// key of that rekey. Storing it is the moment the rekey is accepted: a device that reboots before it stores the SEQN
/// as its ack takes the SEQN from here (it could not open that command again under the new key), and it sends the
/// public key again until the server shows it has the key.
class KeyRecord {
 public:
  explicit KeyRecord(Journal &journal) : journal_(journal) {}
  /// True with the stored version, key, command SEQN and public key; false when there is none.
  bool load(uint32_t *version, uint8_t key[kDeviceKeyLen], uint64_t *seqn, uint8_t pub[kX25519Len]) const;
  bool save(uint32_t version, const uint8_t key[kDeviceKeyLen], uint64_t seqn, const uint8_t pub[kX25519Len]);

 private:
  Journal &journal_;
};

/// The RTC user memory (ESP.rtcUserMemoryRead/Write: 512 bytes in 4-byte blocks), which keeps its contents across
/// deep sleep and loses them with power. Offsets and lengths in bytes, multiples of 4.
class RtcMemory {
 public:
  virtual bool read(size_t offset, uint8_t *out, size_t len) = 0;
  virtual bool write(size_t offset, const uint8_t *data, size_t len) = 0;

 protected:
  ~RtcMemory() = default;  // not deleted through this interface: no virtual destructor, no operator delete
};

/// What a sleeping device carries from one wake to the next, in RTC memory with a magic and a CRC-32: the uplink
/// counter (the next SEQN and the bound reserved on flash), the ack, the config it runs, and the network it joined
/// last (for a fast reconnect; the board's business, kept here as bytes).
struct WakeState {
  static constexpr uint32_t kMagic = 0xE2EE5A31;  ///< "Z1"
  uint64_t next_seqn;   ///< the next uplink SEQN (below bound)
  uint64_t bound;       ///< the uplink bound reserved on flash when the device went to sleep
  uint64_t ack;         ///< the last accepted command SEQN
  uint64_t cfgsn;       ///< the config serial number applied
  uint32_t interval_s;  ///< the interval (the sleep) the config set
  uint32_t wakes;       ///< wakes since the last power-on
  uint8_t registered;   ///< registered since the last power-on
  uint8_t failures;     ///< unanswered wakes in a row (the backoff)
  uint8_t spare[2];     ///< [0] 1: the server has shown it holds the key of version [1] (no epk needed)
  uint8_t network[28];  ///< the board's fast-reconnect data (Actions::network_state)
  /// Reads it; false (and *out zeroed) when the memory holds no valid state: after power loss, or never written.
  static bool load(RtcMemory &rtc, WakeState *out);
  bool save(RtcMemory &rtc) const;
  /// Makes the memory hold no valid state (at the start of a wake: the numbers are in use from then on).
  static bool clear(RtcMemory &rtc);
};

}  // namespace e2ee
