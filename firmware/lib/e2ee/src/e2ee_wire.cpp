#include "e2ee_wire.h"

#include <string.h>

#include "e2ee_base64.h"

namespace e2ee {

namespace {

/// Appends text to out at *pos, keeping room for the final NUL.
bool put(char *out, size_t out_size, size_t *pos, const char *text, size_t len) {
  if (*pos + len + 1 > out_size) return false;
  memcpy(out + *pos, text, len);
  *pos += len;
  out[*pos] = '\0';
  return true;
}

bool put(char *out, size_t out_size, size_t *pos, const char *text) { return put(out, out_size, pos, text, strlen(text)); }

bool put_b64(char *out, size_t out_size, size_t *pos, const uint8_t *bytes, size_t n) {
  size_t written = 0;
  if (!base64_encode(bytes, n, out + *pos, out_size - *pos, &written)) return false;
  *pos += written;
  return true;
}

}  // namespace

size_t u64_text(uint64_t v, char buf[21]) {
  char tmp[21];
  size_t n = 0;
  do {
    tmp[n++] = char('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  buf[n] = '\0';
  return n;
}

bool append(char *out, size_t out_size, size_t *pos, const char *text) { return put(out, out_size, pos, text); }

bool finish_uplink(char *out, size_t out_size, size_t *pos, uint64_t seqn, bool with_ack, uint64_t ack) {
  char num[21];
  u64_text(seqn, num);
  bool ok = put(out, out_size, pos, "\"SEQN\":") && put(out, out_size, pos, num);
  if (ok && with_ack) {
    u64_text(ack, num);
    ok = put(out, out_size, pos, ",\"ack\":") && put(out, out_size, pos, num);
  }
  return ok && put(out, out_size, pos, "}");
}

namespace {

bool reading(const char *data_json, uint64_t seqn, bool with_ack, uint64_t ack, char *out, size_t out_size, size_t *out_len) {
  if (data_json == nullptr || out == nullptr || out_size == 0) return false;
  size_t pos = 0;
  if (!put(out, out_size, &pos, "{\"data\":") || !put(out, out_size, &pos, data_json) || !put(out, out_size, &pos, ",") ||
      !finish_uplink(out, out_size, &pos, seqn, with_ack, ack)) {
    return false;
  }
  if (out_len) *out_len = pos;
  return true;
}

}  // namespace

bool build_reading(const char *data_json, uint64_t seqn, char *out, size_t out_size, size_t *out_len) {
  return reading(data_json, seqn, false, 0, out, out_size, out_len);
}

bool build_reading_ack(const char *data_json, uint64_t seqn, uint64_t ack, char *out, size_t out_size, size_t *out_len) {
  return reading(data_json, seqn, true, ack, out, out_size, out_len);
}

size_t body_len(size_t len, const Keys &keys) {
  // {"iv":"<24>","data":"<b64>"}  plus  ,"mac":"<44>"  plus  ,"kv":<digits>
  size_t n = strlen("{\"iv\":\"\",\"data\":\"\"}") + base64_encoded_len(kIvLen) + base64_encoded_len(padded_len(len));
  if (keys.auth == Auth::HmacSha256) n += strlen(",\"mac\":\"\"") + base64_encoded_len(kMacLen);
  if (keys.kv >= 0) {
    char num[21];
    n += strlen(",\"kv\":") + u64_text(uint64_t(keys.kv), num);
  }
  if (keys.send_epk) n += strlen(",\"epk\":\"\"") + base64_encoded_len(kX25519Len);
  return n;
}

bool seal_with_iv(const Keys &keys, MsgType type, const char *deviceid, const uint8_t *plaintext, size_t len, const uint8_t iv[kIvLen],
                  uint8_t *work, size_t work_size, char *out, size_t out_size, size_t *out_len) {
  if (out == nullptr || out_size < body_len(len, keys) + 1 || work == nullptr || work_size < padded_len(len)) return false;
  if (len > 0 && plaintext != work) memmove(work, plaintext, len);
  size_t ct_len = 0;
  if (!aes_cbc_encrypt(keys, iv, work, len, work_size, &ct_len)) return false;
  size_t pos = 0;
  bool ok = put(out, out_size, &pos, "{\"iv\":\"") && put_b64(out, out_size, &pos, iv, kIvLen) &&
            put(out, out_size, &pos, "\",\"data\":\"") && put_b64(out, out_size, &pos, work, ct_len) && put(out, out_size, &pos, "\"");
  if (ok && keys.auth == Auth::HmacSha256) {
    uint8_t mac[kMacLen];
    ok = compute_mac(keys, type, deviceid, iv, work, ct_len, mac) && put(out, out_size, &pos, ",\"mac\":\"") &&
         put_b64(out, out_size, &pos, mac, kMacLen) && put(out, out_size, &pos, "\"");
  }
  if (ok && keys.kv >= 0) {
    char num[21];
    u64_text(uint64_t(keys.kv), num);
    ok = put(out, out_size, &pos, ",\"kv\":") && put(out, out_size, &pos, num);
  }
  if (ok && keys.send_epk) ok = put(out, out_size, &pos, ",\"epk\":\"") && put_b64(out, out_size, &pos, keys.epk, kX25519Len) && put(out, out_size, &pos, "\"");
  ok = ok && put(out, out_size, &pos, "}");
  if (!ok) return false;
  if (out_len) *out_len = pos;
  return true;
}

bool seal(const Keys &keys, MsgType type, const char *deviceid, const uint8_t *plaintext, size_t len, RandomFn random,
          uint8_t *work, size_t work_size, char *out, size_t out_size, size_t *out_len) {
  if (random == nullptr) return false;
  uint8_t iv[kIvLen];
  random(iv, kIvLen);
  return seal_with_iv(keys, type, deviceid, plaintext, len, iv, work, work_size, out, out_size, out_len);
}

OpenStatus open(const Keys &keys, MsgType type, const char *deviceid, const char *body, size_t body_len,
                uint8_t *out, size_t out_size, size_t *out_len) {
  Span iv_b64, data_b64, mac_b64;
  if (!json_string(body, body_len, "iv", &iv_b64) || !json_string(body, body_len, "data", &data_b64)) return OpenStatus::BadBody;
  uint8_t iv[kIvLen];
  size_t n = 0;
  if (!base64_decode(iv_b64.ptr, iv_b64.len, iv, sizeof(iv), &n) || n != kIvLen) return OpenStatus::BadBody;
  size_t ct_len = 0;
  if (out == nullptr || out_size == 0 || !base64_decode(data_b64.ptr, data_b64.len, out, out_size - 1, &ct_len)) return OpenStatus::BadBody;
  if (keys.auth == Auth::HmacSha256) {
    uint8_t expected[kMacLen];
    uint8_t got[kMacLen];
    size_t mac_len = 0;
    const bool have = json_string(body, body_len, "mac", &mac_b64) && base64_decode(mac_b64.ptr, mac_b64.len, got, sizeof(got), &mac_len) && mac_len == kMacLen;
    if (!compute_mac(keys, type, deviceid, iv, out, ct_len, expected)) return OpenStatus::Rejected;
    if (!have) memset(got, 0, sizeof(got));
    // Compare even when the MAC is missing, so both failures take the same path.
    if (!equal_ct(expected, got, kMacLen) || !have) return OpenStatus::Rejected;
  }
  size_t pt_len = 0;
  if (!aes_cbc_decrypt(keys, iv, out, ct_len, &pt_len)) return OpenStatus::Rejected;
  out[pt_len] = 0;
  if (out_len) *out_len = pt_len;
  return OpenStatus::Ok;
}

void SeqCounter::begin() {
  uint64_t stored = 0;
  if (!store_.load(&stored)) stored = 0;
  // The newest bound may be lost: numbers below it may have been used. Skipping a block ahead keeps them unused.
  // Stored at once: a reboot before the first reservation must not go back below it.
  if (store_.lost_newer()) {
    stored += block_;
    store_.save(stored);
  }
  next_ = stored;
  bound_ = stored;
}

bool SeqCounter::next(uint64_t *out) {
  if (next_ >= bound_) {
    const uint64_t bound = next_ + block_;
    if (!store_.save(bound)) return false;
    bound_ = bound;
    writes_++;
  }
  *out = next_++;
  return true;
}

void DownlinkGuard::begin() {
  uint64_t stored = 0;
  last_ = store_.load(&stored) ? stored : 0;
}

CommandStatus DownlinkGuard::accept(const Keys &keys, const char *deviceid, const char *body, size_t body_len,
                                    uint8_t *work, size_t work_size, Command *out) {
  size_t len = 0;
  const OpenStatus opened = open(keys, MsgType::Command, deviceid, body, body_len, work, work_size, &len);
  if (opened == OpenStatus::BadBody) return CommandStatus::BadBody;
  if (opened != OpenStatus::Ok) return CommandStatus::Rejected;
  const char *text = reinterpret_cast<const char *>(work);
  uint64_t seqn = 0;
  Span cmd;
  bool is_string = true;
  if (!json_uint(text, len, "SEQN", &seqn)) return CommandStatus::BadCommand;
  Span rekey;
  if (json_member(text, len, "rekey", &rekey, &is_string) && !is_string && rekey.len > 0 && rekey.ptr[0] == '{') {
    // {"kv":v,"pub":"<64 hex>"}: the server's X25519 public key
    uint64_t kv = 0;
    Span hex;
    if (!json_uint(rekey.ptr, rekey.len, "kv", &kv) || kv > 0xffffffffu || !json_string(rekey.ptr, rekey.len, "pub", &hex) ||
        hex.len != 2 * kX25519Len || !hex_decode(hex.ptr, hex.len, out->rekey_pub)) {
      return CommandStatus::BadCommand;
    }
    if (seqn <= last_) return CommandStatus::Replay;
    out->seqn = seqn;
    out->cmd = Span{};
    out->rekey_kv = uint32_t(kv);
    return CommandStatus::Rekey;
  }
  if (!json_member(text, len, "cmd", &cmd, &is_string) || is_string || cmd.len == 0 || cmd.ptr[0] != '{') {
    return CommandStatus::BadCommand;
  }
  if (seqn <= last_) return CommandStatus::Replay;
  // Persist first: a command acted on but forgotten at the next boot could be replayed.
  if (!store_.save(seqn)) return CommandStatus::StoreFailed;
  last_ = seqn;
  out->seqn = seqn;
  out->cmd = cmd;
  return CommandStatus::Ok;
}

bool DownlinkGuard::commit(uint64_t seqn) {
  if (seqn <= last_) return true;
  if (!store_.save(seqn)) return false;
  last_ = seqn;
  return true;
}

}  // namespace e2ee
