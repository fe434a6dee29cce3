#pragma once
// What the host tests share: flash in memory, with reboots, failed commits and power cuts.
#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "e2ee.h"

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
