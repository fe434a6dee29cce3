#pragma once
// What the host tests share: flash in memory, with reboots, failed commits and power cuts.
#include <stddef.h>
#include <stdint.h>

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

/// The EEPROM emulation as the core has it: a RAM image, made persistent by commit(). reboot() reads it back.
struct MemFlash : e2ee::Flash {
  std::vector<uint8_t> ram;
  std::vector<uint8_t> flash;
  int commits = 0;        ///< commits that persisted
  long attempts = 0;      ///< commits tried
  bool fail_commit = false;
  /// At commit attempt number cut_at, only cut_bytes of the changed bytes persist, then the power goes (a torn write).
  long cut_at = -1;
  long cut_bytes = 0;
  bool power_lost = false;
  /// The cut commit persisted every byte it changed: a whole write, and then the power went.
  bool cut_completed = false;
  /// For each attempt, the first address it changed (size() when none).
  std::vector<size_t> first_changed;
  explicit MemFlash(size_t n, uint8_t fill = 0xFF) : ram(n, fill), flash(n, fill) {}
  size_t size() const override { return ram.size(); }
  uint8_t read(size_t addr) const override { return ram.at(addr); }
  void write(size_t addr, uint8_t value) override { ram.at(addr) = value; }
  bool commit() override {
    if (fail_commit || power_lost) return false;
    const long n = attempts++;
    size_t first = ram.size();
    for (size_t i = 0; i < ram.size() && first == ram.size(); i++) {
      if (flash[i] != ram[i]) first = i;
    }
    first_changed.push_back(first);
    if (n == cut_at) {
      long left = cut_bytes;
      for (size_t i = 0; i < ram.size() && left > 0; i++) {
        if (flash[i] != ram[i]) {
          flash[i] = ram[i];
          left--;
        }
      }
      power_lost = true;
      cut_completed = flash == ram;
      return false;
    }
    flash = ram;
    commits++;
    return true;
  }
  /// A reboot: RAM is read back from flash.
  void reboot() {
    ram = flash;
    power_lost = false;
  }
};
