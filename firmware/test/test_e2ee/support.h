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
  int commits = 0;
  bool fail_commit = false;
  /// When >= 0: the next commit persists only this many of the changed bytes, then the power goes (a torn write).
  long cut_after = -1;
  bool power_lost = false;
  explicit MemFlash(size_t n, uint8_t fill = 0xFF) : ram(n, fill), flash(n, fill) {}
  size_t size() const override { return ram.size(); }
  uint8_t read(size_t addr) const override { return ram.at(addr); }
  void write(size_t addr, uint8_t value) override { ram.at(addr) = value; }
  bool commit() override {
    if (fail_commit || power_lost) return false;
    if (cut_after >= 0) {
      long left = cut_after;
      for (size_t i = 0; i < ram.size() && left > 0; i++) {
        if (flash[i] != ram[i]) {
          flash[i] = ram[i];
          left--;
        }
      }
      cut_after = -1;
      power_lost = true;
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
