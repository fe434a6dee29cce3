#include "e2ee_store.h"

#include "e2ee_text.h"

#include <string.h>

namespace e2ee {

const char *slot_state_name(SlotState state) {
  switch (state) {
    case SlotState::Ok: return E2EE_TEXT("ok");
    case SlotState::Erased: return E2EE_TEXT("erased");
    case SlotState::Zeroed: return E2EE_TEXT("zeroed");
    case SlotState::Corrupt: return E2EE_TEXT("corrupt");
  }
  return E2EE_TEXT("corrupt");
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

namespace {

constexpr size_t kMaxValue = Journal::kKeyLen;

size_t tag_len(JournalTag tag) {
  switch (tag) {
    case JournalTag::Uplink:
    case JournalTag::Ack: return 8;
    case JournalTag::Key: return Journal::kKeyLen;
  }
  return 0;
}

constexpr JournalTag kTags[] = {JournalTag::Uplink, JournalTag::Ack, JournalTag::Key};

}  // namespace

uint8_t *Journal::value_of(JournalTag tag, size_t *len) {
  *len = tag_len(tag);
  switch (tag) {
    case JournalTag::Uplink: return uplink_;
    case JournalTag::Ack: return ack_;
    case JournalTag::Key: return key_;
  }
  return nullptr;
}

SlotState Journal::mount() {
  mounted_ = true;
  damaged_ = false;
  have_sector_ = false;
  present_ = 0;
  uint8_t all = 0xFF;
  uint8_t any = 0;
  for (size_t s = 0; s < flash_.sectors(); s++) {
    uint8_t h[kHeader];
    if (!flash_.read(s * Flash::kSectorSize, h, sizeof(h))) continue;
    for (uint8_t b : h) {
      all &= b;
      any |= b;
    }
    if (get32(h) != kMagic || get32(h + 8) != 0xFFFFFFFFu || crc32(h, 12) != get32(h + 12)) continue;
    const uint32_t gen = get32(h + 4);
    // The newest generation wins (serial-number order, so the count may wrap).
    if (!have_sector_ || gen - generation_ - 1 < 0x7FFFFFFFu) {
      have_sector_ = true;
      sector_ = s;
      generation_ = gen;
    }
  }
  if (!have_sector_) return all == 0xFF ? SlotState::Erased : any == 0 ? SlotState::Zeroed : SlotState::Corrupt;
  const size_t base = sector_ * Flash::kSectorSize;
  pos_ = kHeader;
  while (pos_ + 4 <= Flash::kSectorSize) {
    uint8_t rec[record_size(kMaxValue)];
    if (!flash_.read(base + pos_, rec, 4)) break;
    if (get32(rec) == 0xFFFFFFFFu) break;  // the end: erased from here on
    const JournalTag tag = JournalTag(rec[0]);
    const size_t len = rec[1];
    const size_t size = record_size(len);
    size_t want = 0;
    uint8_t *value = rec[2] == uint8_t(~rec[0]) && rec[3] == uint8_t(~rec[1]) ? value_of(tag, &want) : nullptr;
    if (!value || want != len || pos_ + size > Flash::kSectorSize || !flash_.read(base + pos_ + 4, rec + 4, size - 4) ||
        crc32(rec, size - 4) != get32(rec + size - 4)) {
      // A torn write, or a worn cell: what follows cannot be trusted, and the next write goes to a fresh sector.
      damaged_ = true;
      pos_ = Flash::kSectorSize;
      break;
    }
    memcpy(value, rec + 4, len);
    present_ |= uint8_t(1u << rec[0]);
    pos_ += size;
  }
  return SlotState::Ok;
}

bool Journal::get(JournalTag tag, uint8_t *out, size_t len) const {
  if (!(present_ & (1u << uint8_t(tag))) || len != tag_len(tag)) return false;
  memcpy(out, tag == JournalTag::Uplink ? uplink_ : tag == JournalTag::Ack ? ack_ : key_, len);
  return true;
}

bool Journal::append(size_t sector, size_t *pos, JournalTag tag, const uint8_t *value, size_t len) {
  uint8_t rec[record_size(kMaxValue)];
  const size_t size = record_size(len);
  if (*pos + size > Flash::kSectorSize) return false;
  memset(rec, 0xFF, size);
  rec[0] = uint8_t(tag);
  rec[1] = uint8_t(len);
  rec[2] = uint8_t(~rec[0]);
  rec[3] = uint8_t(~rec[1]);
  memcpy(rec + 4, value, len);
  put32(rec + size - 4, crc32(rec, size - 4));
  writes_++;
  if (!flash_.write(sector * Flash::kSectorSize + *pos, rec, size)) return false;
  *pos += size;
  return true;
}

bool Journal::rotate(JournalTag tag, const uint8_t *value) {
  if (flash_.sectors() < 2) return false;
  // The next sector in turn: erased, then the snapshot of every value (the new one in place of its old value), then
  // the header. Until the header is on flash the current sector stays the valid one, so a cut anywhere loses nothing
  // that was committed.
  const size_t next = have_sector_ ? (sector_ + 1) % flash_.sectors() : 0;
  erases_++;
  if (!flash_.erase(next)) return false;
  size_t pos = kHeader;
  for (JournalTag t : kTags) {
    const bool is_new = value && t == tag;
    if (!is_new && !(present_ & (1u << uint8_t(t)))) continue;
    size_t len = 0;
    const uint8_t *current = value_of(t, &len);
    if (!append(next, &pos, t, is_new ? value : current, len)) return false;
  }
  uint8_t h[kHeader];
  put32(h, kMagic);
  put32(h + 4, generation_ + 1);
  put32(h + 8, 0xFFFFFFFFu);
  put32(h + 12, crc32(h, 12));
  writes_++;
  if (!flash_.write(next * Flash::kSectorSize, h, sizeof(h))) return false;
  have_sector_ = true;
  sector_ = next;
  generation_++;
  pos_ = pos;
  damaged_ = false;
  return true;
}

bool Journal::put(JournalTag tag, const uint8_t *value, size_t len) {
  size_t want = 0;
  uint8_t *slot = value_of(tag, &want);
  if (!slot || len != want || !mounted_) return false;
  const bool present = present_ & (1u << uint8_t(tag));
  if (present && memcmp(slot, value, len) == 0) return true;
  bool ok = have_sector_ && append(sector_, &pos_, tag, value, len);
  if (!ok && have_sector_ && pos_ + record_size(len) <= Flash::kSectorSize) {
    // A failed write may have left some bits programmed: the rest of this sector is not used any more.
    pos_ = Flash::kSectorSize;
    return false;
  }
  if (!ok) ok = rotate(tag, value);
  if (!ok) return false;
  memcpy(slot, value, len);
  present_ |= uint8_t(1u << uint8_t(tag));
  return true;
}

bool JournalCounter::load(uint64_t *value) {
  uint8_t raw[8];
  if (!journal_.get(tag_, raw, sizeof(raw))) return false;
  *value = get64(raw);
  return true;
}

bool JournalCounter::save(uint64_t value) {
  uint8_t raw[8];
  put64(raw, value);
  return journal_.put(tag_, raw, sizeof(raw));
}

bool KeyRecord::load(uint32_t *version, uint8_t key[kDeviceKeyLen], uint64_t *seqn, uint8_t pub[kX25519Len]) const {
  uint8_t raw[Journal::kKeyLen];
  if (!journal_.get(JournalTag::Key, raw, sizeof(raw))) return false;
  *version = get32(raw);
  memcpy(key, raw + 4, kDeviceKeyLen);
  *seqn = get64(raw + 4 + kDeviceKeyLen);
  memcpy(pub, raw + 12 + kDeviceKeyLen, kX25519Len);
  memset(raw, 0, sizeof(raw));
  return true;
}

bool KeyRecord::save(uint32_t version, const uint8_t key[kDeviceKeyLen], uint64_t seqn, const uint8_t pub[kX25519Len]) {
  uint8_t raw[Journal::kKeyLen];
  put32(raw, version);
  memcpy(raw + 4, key, kDeviceKeyLen);
  put64(raw + 4 + kDeviceKeyLen, seqn);
  memcpy(raw + 12 + kDeviceKeyLen, pub, kX25519Len);
  const bool ok = journal_.put(JournalTag::Key, raw, sizeof(raw));
  memset(raw, 0, sizeof(raw));
  return ok;
}

namespace {

constexpr size_t kWakeLen = 4 + 8 * 4 + 4 + 4 + 4 + 28 + 4;  // magic | fields | crc

}  // namespace

bool WakeState::load(RtcMemory &rtc, WakeState *out) {
  uint8_t raw[kWakeLen];
  memset(out, 0, sizeof(*out));
  if (!rtc.read(0, raw, sizeof(raw)) || get32(raw) != kMagic || crc32(raw, kWakeLen - 4) != get32(raw + kWakeLen - 4)) return false;
  const uint8_t *p = raw + 4;
  out->next_seqn = get64(p);
  out->bound = get64(p + 8);
  out->ack = get64(p + 16);
  out->cfgsn = get64(p + 24);
  out->interval_s = get32(p + 32);
  out->wakes = get32(p + 36);
  out->registered = p[40];
  out->failures = p[41];
  memcpy(out->spare, p + 42, 2);
  memcpy(out->network, p + 44, sizeof(out->network));
  return out->next_seqn <= out->bound;
}

bool WakeState::save(RtcMemory &rtc) const {
  uint8_t raw[kWakeLen];
  put32(raw, kMagic);
  uint8_t *p = raw + 4;
  put64(p, next_seqn);
  put64(p + 8, bound);
  put64(p + 16, ack);
  put64(p + 24, cfgsn);
  put32(p + 32, interval_s);
  put32(p + 36, wakes);
  p[40] = registered;
  p[41] = failures;
  memcpy(p + 42, spare, 2);
  memcpy(p + 44, network, sizeof(network));
  put32(raw + kWakeLen - 4, crc32(raw, kWakeLen - 4));
  return rtc.write(0, raw, sizeof(raw));
}

bool WakeState::clear(RtcMemory &rtc) {
  const uint8_t zero[4] = {0, 0, 0, 0};
  return rtc.write(0, zero, sizeof(zero));
}

}  // namespace e2ee
