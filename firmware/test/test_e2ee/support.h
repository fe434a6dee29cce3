#pragma once
// What the host tests share: flash in memory, with reboots, failed commits and power cuts.
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <string>
#include <vector>

#include "e2ee.h"

/// A deterministic stand-in for the hardware RNG (a linear congruential sequence): repeatable IVs.
inline void test_random(uint8_t *out, size_t n) {
  static uint32_t state = 0x12345678;
  for (size_t i = 0; i < n; i++) {
    state = state * 1103515245u + 12345u;
    out[i] = uint8_t(state >> 16);
  }
}

/// text sealed as one message of the given type for device id: the body, or "" when sealing fails.
inline std::string seal_text(const e2ee::Keys &k, e2ee::MsgType type, const std::string &id, const std::string &text) {
  std::vector<uint8_t> work(e2ee::padded_len(text.size()));
  std::vector<char> out(e2ee::body_len(text.size(), k) + 1);
  size_t n = 0;
  if (!e2ee::seal(k, type, id.c_str(), reinterpret_cast<const uint8_t *>(text.data()), text.size(), test_random, work.data(), work.size(),
                  out.data(), out.size(), &n)) {
    return "";
  }
  return std::string(out.data(), n);
}

/// NOR flash in memory, as the journal sees it (ESP.flashRead/flashWrite/flashEraseSector): a write only clears bits,
/// an erase sets a whole sector to 0xFF. Every write and erase is counted and logged, can be made to fail, or can be
/// cut short by a power cut (a torn write or erase). reboot() brings the power back; the bytes stay as they are.
struct MemFlash : e2ee::Flash {
  struct Op {
    char kind;    ///< 'w' a write, 'e' an erase
    size_t addr;  ///< the address written, or the sector's first byte
    uint8_t first;  ///< a write's first byte (a journal record's tag)
  };
  std::vector<uint8_t> bytes;
  long attempts = 0;      ///< writes and erases tried
  int writes = 0;         ///< writes done
  int erases = 0;         ///< erases done
  std::vector<int> sector_erases;
  std::vector<Op> ops;
  bool fail_writes = false;
  /// At attempt number cut_at, only cut_bytes bytes of the write persist (an erase: cut_bytes x 256 bytes of the
  /// sector), then the power goes.
  long cut_at = -1;
  long cut_bytes = 0;
  bool power_lost = false;
  /// The cut operation changed everything it meant to: a whole write, and then the power went.
  bool cut_completed = false;
  explicit MemFlash(size_t sectors = e2ee::StorageLayout::kSectors, uint8_t fill = 0xFF)
      : bytes(sectors * kSectorSize, fill), sector_erases(sectors, 0) {}
  size_t sectors() const override { return sector_erases.size(); }
  bool read(size_t addr, uint8_t *out, size_t len) override {
    if (addr + len > bytes.size()) return false;
    std::copy(bytes.begin() + long(addr), bytes.begin() + long(addr + len), out);
    return true;
  }
  bool write(size_t addr, const uint8_t *data, size_t len) override {
    if (fail_writes || power_lost || addr % 4 || len % 4 || addr + len > bytes.size()) return false;
    const long n = attempts++;
    ops.push_back({'w', addr, len ? data[0] : uint8_t(0)});
    const size_t upto = n == cut_at ? std::min(len, size_t(cut_bytes)) : len;
    for (size_t i = 0; i < upto; i++) bytes[addr + i] &= data[i];
    if (n == cut_at) {
      power_lost = true;
      cut_completed = upto == len;
      return false;
    }
    writes++;
    return true;
  }
  bool erase(size_t sector) override {
    if (fail_writes || power_lost || sector >= sectors()) return false;
    const long n = attempts++;
    ops.push_back({'e', sector * kSectorSize, 0});
    const size_t upto = n == cut_at ? std::min(kSectorSize, size_t(cut_bytes) * 256) : kSectorSize;
    std::fill(bytes.begin() + long(sector * kSectorSize), bytes.begin() + long(sector * kSectorSize + upto), uint8_t(0xFF));
    if (n == cut_at) {
      power_lost = true;
      cut_completed = upto == kSectorSize;
      return false;
    }
    erases++;
    sector_erases[sector]++;
    return true;
  }
  /// The power comes back (the device boots again on the same bytes).
  void reboot() { power_lost = false; }
};

/// The RTC user memory: kept across deep sleep, garbage after power loss.
struct MemRtc : e2ee::RtcMemory {
  std::vector<uint8_t> mem = std::vector<uint8_t>(512, 0x5A);
  int writes = 0;
  bool read(size_t offset, uint8_t *out, size_t len) override {
    if (offset % 4 || len % 4 || offset + len > mem.size()) return false;
    std::copy(mem.begin() + long(offset), mem.begin() + long(offset + len), out);
    return true;
  }
  bool write(size_t offset, const uint8_t *data, size_t len) override {
    if (offset % 4 || len % 4 || offset + len > mem.size()) return false;
    std::copy(data, data + len, mem.begin() + long(offset));
    writes++;
    return true;
  }
  /// Power lost: what the memory holds afterwards is whatever it comes up with.
  void power_loss(uint32_t seed) {
    for (auto &b : mem) b = uint8_t(seed = seed * 1103515245u + 12345u);
  }
};
