#include "e2ee_crypto.h"

#include <string.h>

#include <bearssl/bearssl.h>

namespace e2ee {

static const char kInfoEnc[] = "esp-e2ee v1 enc";
static const char kInfoMac[] = "esp-e2ee v1 mac";

static void hkdf(const uint8_t *ikm, size_t ikm_len, const char *info, uint8_t *out, size_t out_len) {
  br_hkdf_context hc;
  br_hkdf_init(&hc, &br_sha256_vtable, nullptr, 0);
  br_hkdf_inject(&hc, ikm, ikm_len);
  br_hkdf_flip(&hc);
  br_hkdf_produce(&hc, info, strlen(info), out, out_len);
}

bool keys_init(Keys *keys, const uint8_t *key, size_t key_len, Auth auth) {
  if (keys == nullptr || key == nullptr || (key_len != 16 && key_len != 24 && key_len != 32)) return false;
  memset(keys, 0, sizeof(*keys));
  keys->enc_len = key_len;
  keys->auth = auth;
  keys->kv = -1;
  memcpy(keys->raw, key, key_len);
  if (auth == Auth::HmacSha256) {
    hkdf(key, key_len, kInfoEnc, keys->enc, key_len);
    hkdf(key, key_len, kInfoMac, keys->mac, kMacLen);
  } else {
    memcpy(keys->enc, key, key_len);
  }
  return true;
}

bool hex_decode(const char *hex, size_t n, uint8_t *out) {
  if (n % 2 != 0) return false;
  for (size_t i = 0; i < n; i++) {
    const char c = hex[i];
    const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (v < 0) return false;
    out[i / 2] = uint8_t(out[i / 2] << 4 | v);
  }
  return true;
}

bool keys_from_hex(Keys *keys, const char *hex, Auth auth) {
  if (hex == nullptr) return false;
  const size_t n = strlen(hex);
  if (n != 32 && n != 48 && n != 64) return false;
  uint8_t raw[32];
  const bool ok = hex_decode(hex, n, raw) && keys_init(keys, raw, n / 2, auth);
  memset(raw, 0, sizeof(raw));
  return ok;
}

bool aes_cbc_encrypt(const Keys &keys, const uint8_t iv[kIvLen], uint8_t *buf, size_t len, size_t buf_size, size_t *ct_len) {
  const size_t total = padded_len(len);
  if (buf == nullptr || buf_size < total) return false;
  const uint8_t pad = uint8_t(total - len);
  memset(buf + len, pad, pad);
  br_aes_ct_cbcenc_keys ctx;
  br_aes_ct_cbcenc_init(&ctx, keys.enc, keys.enc_len);
  // BearSSL advances the IV it is given: work on a copy, never on the caller's.
  uint8_t chain[kIvLen];
  memcpy(chain, iv, kIvLen);
  br_aes_ct_cbcenc_run(&ctx, chain, buf, total);
  if (ct_len) *ct_len = total;
  return true;
}

bool aes_cbc_decrypt(const Keys &keys, const uint8_t iv[kIvLen], uint8_t *buf, size_t len, size_t *pt_len) {
  if (buf == nullptr || len == 0 || len % kBlock != 0) return false;
  br_aes_ct_cbcdec_keys ctx;
  br_aes_ct_cbcdec_init(&ctx, keys.enc, keys.enc_len);
  uint8_t chain[kIvLen];
  memcpy(chain, iv, kIvLen);
  br_aes_ct_cbcdec_run(&ctx, chain, buf, len);
  // Look at all 16 trailing bytes whatever the pad length, so the time taken does not tell where it failed.
  const uint8_t n = buf[len - 1];
  uint8_t bad = uint8_t((n == 0) | (n > kBlock));
  for (size_t i = 1; i <= kBlock; i++) {
    const uint8_t in_pad = uint8_t(i <= n);
    bad |= uint8_t(in_pad & uint8_t(buf[len - i] != n));
  }
  if (bad) return false;
  if (pt_len) *pt_len = len - n;
  return true;
}

bool compute_mac(const Keys &keys, MsgType type, const char *deviceid, const uint8_t iv[kIvLen], const uint8_t *ct, size_t ct_len,
                 uint8_t out[kMacLen]) {
  const size_t id_len = deviceid ? strlen(deviceid) : 0;
  if (id_len > kMaxDeviceIdLen) return false;
  br_hmac_key_context kc;
  br_hmac_key_init(&kc, &br_sha256_vtable, keys.mac, kMacLen);
  br_hmac_context hc;
  br_hmac_init(&hc, &kc, 0);
  const uint8_t prefix[2] = {uint8_t(type), uint8_t(id_len)};
  br_hmac_update(&hc, prefix, 2);
  if (id_len) br_hmac_update(&hc, deviceid, id_len);
  br_hmac_update(&hc, iv, kIvLen);
  br_hmac_update(&hc, ct, ct_len);
  br_hmac_out(&hc, out);
  return true;
}

bool equal_ct(const uint8_t *a, const uint8_t *b, size_t n) {
  uint8_t diff = 0;
  for (size_t i = 0; i < n; i++) diff |= uint8_t(a[i] ^ b[i]);
  return diff == 0;
}

static const char kInfoRekey[] = "esp-e2ee v1 rekey";

bool rekey_derive(const Keys &current, const char *deviceid, uint32_t kv, const uint8_t server_pub[kX25519Len], RandomFn random,
                  uint8_t new_key[kDeviceKeyLen], uint8_t device_pub[kX25519Len]) {
  const size_t id_len = deviceid ? strlen(deviceid) : 0;
  if (id_len == 0 || id_len > 64 || random == nullptr) return false;
  // The private key is 32 random bytes, handed to BearSSL as they are: BearSSL 0.6 as the ESP8266 core ships it reads
  // the multiplier big-endian, later BearSSL (Debian's) little-endian as RFC 7748 does. Either reading of random
  // bytes is a valid private key, and only this side ever uses it, so the exchange is the same.
  uint8_t sk[kX25519Len];
  random(sk, sizeof(sk));
  const br_ec_impl &ec = br_ec_c25519_m15;
  uint8_t shared[kX25519Len];
  memcpy(shared, server_pub, kX25519Len);
  bool ok = ec.mulgen(device_pub, sk, sizeof(sk), BR_EC_curve25519) == kX25519Len && ec.mul(shared, sizeof(shared), sk, sizeof(sk), BR_EC_curve25519) == 1;
  uint8_t any = 0;
  for (uint8_t b : shared) any |= b;
  ok = ok && any != 0;
  if (ok) {
    // info: label || 0x00 || id || uint32be(kv) || S || D (at most 17 + 1 + 64 + 4 + 64 bytes)
    uint8_t info[sizeof(kInfoRekey) + 64 + 4 + 2 * kX25519Len];
    size_t n = sizeof(kInfoRekey);  // the label with its NUL, which is the 0x00
    memcpy(info, kInfoRekey, n);
    memcpy(info + n, deviceid, id_len);
    n += id_len;
    for (int shift = 24; shift >= 0; shift -= 8) info[n++] = uint8_t(kv >> shift);
    memcpy(info + n, server_pub, kX25519Len);
    memcpy(info + n + kX25519Len, device_pub, kX25519Len);
    n += 2 * kX25519Len;
    br_hkdf_context hc;
    br_hkdf_init(&hc, &br_sha256_vtable, current.raw, current.enc_len);
    br_hkdf_inject(&hc, shared, sizeof(shared));
    br_hkdf_flip(&hc);
    br_hkdf_produce(&hc, info, n, new_key, kDeviceKeyLen);
  }
  memset(sk, 0, sizeof(sk));
  memset(shared, 0, sizeof(shared));
  return ok;
}

}  // namespace e2ee
