#include "e2ee_store.h"

#include <string.h>

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

void put64(uint8_t *out, uint64_t v) {
  put32(out, uint32_t(v));
  put32(out + 4, uint32_t(v >> 32));
}

uint64_t get64(const uint8_t *in) { return uint64_t(get32(in)) | uint64_t(get32(in + 4)) << 32; }

}  // namespace

SlotState Slot::load(uint8_t *payload) const {
  uint8_t rec[kMaxLen + 8];
  const size_t total = footprint(len_);
  if (len_ > kMaxLen || addr_ + total > flash_.size()) return SlotState::Corrupt;
  uint8_t any = 0;
  uint8_t all = 0xFF;
  for (size_t i = 0; i < total; i++) {
    rec[i] = flash_.read(addr_ + i);
    any |= rec[i];
    all &= rec[i];
  }
  if (all == 0xFF) return SlotState::Erased;
  if (any == 0) return SlotState::Zeroed;
  // The payload is handed out only when the magic and the CRC over the bytes as read match.
  if (get32(rec) != magic_ || crc32(rec, 4 + len_) != get32(rec + 4 + len_)) return SlotState::Corrupt;
  memcpy(payload, rec + 4, len_);
  return SlotState::Ok;
}

bool Slot::save(const uint8_t *payload) {
  uint8_t rec[kMaxLen + 8];
  if (len_ > kMaxLen || addr_ + footprint(len_) > flash_.size()) return false;
  put32(rec, magic_);
  memcpy(rec + 4, payload, len_);
  put32(rec + 4 + len_, crc32(rec, 4 + len_));
  for (size_t i = 0; i < footprint(len_); i++) flash_.write(addr_ + i, rec[i]);
  return flash_.commit();
}

SlotState SlotPair::load(uint8_t *payload, bool *lost_newer) {
  uint8_t raw_a[kMaxLen + 4];
  uint8_t raw_b[kMaxLen + 4];
  const SlotState sa = len_ <= kMaxLen ? a_.load(raw_a) : SlotState::Corrupt;
  const SlotState sb = len_ <= kMaxLen ? b_.load(raw_b) : SlotState::Corrupt;
  *lost_newer = false;
  if (sa != SlotState::Ok && sb != SlotState::Ok) {
    generation_ = 0;
    next_is_b_ = false;
    return sa == sb ? sa : SlotState::Corrupt;
  }
  const uint32_t ga = sa == SlotState::Ok ? get32(raw_a) : 0;
  const uint32_t gb = sb == SlotState::Ok ? get32(raw_b) : 0;
  const bool use_a = sa == SlotState::Ok && (sb != SlotState::Ok || ga - gb < 0x80000000u);
  const uint8_t *raw = use_a ? raw_a : raw_b;
  generation_ = use_a ? ga : gb;
  next_is_b_ = use_a;
  // An erased copy was never written; a damaged one may have been the newer, cut short or worn.
  const SlotState other = use_a ? sb : sa;
  *lost_newer = other == SlotState::Corrupt || other == SlotState::Zeroed;
  memcpy(payload, raw + 4, len_);
  return SlotState::Ok;
}

bool SlotPair::save(const uint8_t *payload) {
  uint8_t raw[kMaxLen + 4];
  if (len_ > kMaxLen) return false;
  put32(raw, generation_ + 1);
  memcpy(raw + 4, payload, len_);
  if (!(next_is_b_ ? b_ : a_).save(raw)) return false;
  generation_++;
  next_is_b_ = !next_is_b_;
  return true;
}

bool SlotPair::erase() {
  a_.erase();
  b_.erase();
  generation_ = 0;
  next_is_b_ = false;
  return a_.commit();
}

bool SlotCounter::load(uint64_t *value) {
  uint8_t raw[8];
  state_ = pair_.load(raw, &lost_newer_);
  value_ = state_ == SlotState::Ok ? get64(raw) : 0;
  if (state_ != SlotState::Ok) return false;
  *value = value_;
  return true;
}

bool SlotCounter::save(uint64_t value) {
  uint8_t raw[8];
  put64(raw, value);
  if (!pair_.save(raw)) return false;
  state_ = SlotState::Ok;
  value_ = value;
  return true;
}

bool SlotCounter::repair() {
  if (state_ == SlotState::Ok && !lost_newer_) return true;
  uint8_t raw[8];
  put64(raw, value_);
  if (!pair_.save_both(raw)) return false;
  state_ = SlotState::Ok;
  lost_newer_ = false;
  return true;
}

SlotState KeySlot::load(uint32_t *version, uint8_t key[kDeviceKeyLen], uint64_t *seqn, uint8_t pub[kX25519Len], bool *lost_newer) {
  uint8_t raw[kLen];
  const SlotState state = pair_.load(raw, lost_newer);
  if (state != SlotState::Ok) return state;
  *version = get32(raw);
  memcpy(key, raw + 4, kDeviceKeyLen);
  *seqn = get64(raw + 4 + kDeviceKeyLen);
  memcpy(pub, raw + 12 + kDeviceKeyLen, kX25519Len);
  return state;
}

bool KeySlot::save(uint32_t version, const uint8_t key[kDeviceKeyLen], uint64_t seqn, const uint8_t pub[kX25519Len], bool both) {
  uint8_t raw[kLen];
  put32(raw, version);
  memcpy(raw + 4, key, kDeviceKeyLen);
  put64(raw + 4 + kDeviceKeyLen, seqn);
  memcpy(raw + 12 + kDeviceKeyLen, pub, kX25519Len);
  const bool ok = both ? pair_.save_both(raw) : pair_.save(raw);
  memset(raw, 0, sizeof(raw));
  return ok;
}

}  // namespace e2ee
