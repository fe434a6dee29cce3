#include "e2ee_store.h"

namespace e2ee {

const char *slot_state_name(SlotState state) {
  switch (state) {
    case SlotState::Ok: return "ok";
    case SlotState::Erased: return "erased";
    case SlotState::Zeroed: return "zeroed";
    case SlotState::Corrupt: return "corrupt";
  }
  return "corrupt";
}

uint32_t crc32(const uint8_t *data, size_t len, uint32_t crc) {
  // Bitwise, no table: 8 iterations a byte over a few dozen bytes costs nothing, and saves 1 KiB of flash.
  crc = ~crc;
  for (size_t i = 0; i < len; i++) {
    crc ^= data[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

namespace {

void put32(uint8_t *out, uint32_t v) {
  for (int i = 0; i < 4; i++) out[i] = uint8_t(v >> (8 * i));
}

uint32_t get32(const uint8_t *in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= uint32_t(in[i]) << (8 * i);
  return v;
}

}  // namespace

SlotState Slot::load(uint8_t *payload) const {
  const size_t total = footprint(len_);
  if (addr_ + total > flash_.size()) return SlotState::Corrupt;
  bool all_ff = true;
  bool all_00 = true;
  for (size_t i = 0; i < total; i++) {
    const uint8_t b = flash_.read(addr_ + i);
    all_ff = all_ff && b == 0xFF;
    all_00 = all_00 && b == 0x00;
  }
  if (all_ff) return SlotState::Erased;
  if (all_00) return SlotState::Zeroed;
  uint8_t head[4];
  uint8_t tail[4];
  for (size_t i = 0; i < 4; i++) head[i] = flash_.read(addr_ + i);
  for (size_t i = 0; i < 4; i++) tail[i] = flash_.read(addr_ + 4 + len_ + i);
  if (get32(head) != magic_) return SlotState::Corrupt;
  // The CRC is computed over the flash bytes as read; the payload is handed out only when it matches.
  uint32_t crc = crc32(head, 4);
  for (size_t i = 0; i < len_; i++) {
    const uint8_t b = flash_.read(addr_ + 4 + i);
    crc = crc32(&b, 1, crc);
  }
  if (crc != get32(tail)) return SlotState::Corrupt;
  for (size_t i = 0; i < len_; i++) payload[i] = flash_.read(addr_ + 4 + i);
  return SlotState::Ok;
}

bool Slot::save(const uint8_t *payload) {
  if (addr_ + footprint(len_) > flash_.size()) return false;
  uint8_t head[4];
  put32(head, magic_);
  uint8_t tail[4];
  put32(tail, crc32(payload, len_, crc32(head, 4)));
  for (size_t i = 0; i < 4; i++) flash_.write(addr_ + i, head[i]);
  for (size_t i = 0; i < len_; i++) flash_.write(addr_ + 4 + i, payload[i]);
  for (size_t i = 0; i < 4; i++) flash_.write(addr_ + 4 + len_ + i, tail[i]);
  return flash_.commit();
}

bool SlotCounter::load(uint64_t *value) {
  uint8_t raw[8];
  state_ = slot_.load(raw);
  if (state_ != SlotState::Ok) return false;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= uint64_t(raw[i]) << (8 * i);
  *value = v;
  return true;
}

bool SlotCounter::save(uint64_t value) {
  uint8_t raw[8];
  for (int i = 0; i < 8; i++) raw[i] = uint8_t(value >> (8 * i));
  if (!slot_.save(raw)) return false;
  state_ = SlotState::Ok;
  return true;
}

bool SlotCounter::repair() {
  if (state_ == SlotState::Ok) return true;
  return save(0);
}

SlotState KeySlot::load(uint32_t *version, uint8_t key[16]) const {
  uint8_t raw[20];
  const SlotState state = slot_.load(raw);
  if (state != SlotState::Ok) return state;
  *version = get32(raw);
  for (int i = 0; i < 16; i++) key[i] = raw[4 + i];
  return state;
}

bool KeySlot::save(uint32_t version, const uint8_t key[16]) {
  uint8_t raw[20];
  put32(raw, version);
  for (int i = 0; i < 16; i++) raw[4 + i] = key[i];
  return slot_.save(raw);
}

}  // namespace e2ee
