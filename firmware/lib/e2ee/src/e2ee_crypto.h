#pragma once
/// AES-CBC with full PKCS#7 and HMAC-SHA256 encrypt-then-MAC on BearSSL's C API,
/// byte-compatible with the Node-RED nodes (see the package README, "Wire format").
#include <stddef.h>
#include <stdint.h>

namespace e2ee {

constexpr size_t kBlock = 16;
constexpr size_t kIvLen = 16;
constexpr size_t kMacLen = 32;
constexpr size_t kMaxDeviceIdLen = 255;
/// X25519 keys and shared secrets (RFC 7748): 32 bytes.
constexpr size_t kX25519Len = 32;
/// Device keys, and the keys a rekey makes: AES-128.
constexpr size_t kDeviceKeyLen = 16;

enum class Auth : uint8_t { None, HmacSha256 };

/// What a message is, bound into the MAC as its first byte: uplinks (device to server) have the
/// high bit clear, downlinks have it set, so nothing verifies as another type or direction.
enum class MsgType : uint8_t { Reading = 0x01, Register = 0x02, Poll = 0x03, Command = 0x81, Config = 0x82 };

/// Key material. With Auth::HmacSha256 the encryption and MAC keys are derived with
/// HKDF-SHA256 (empty salt, info "esp-e2ee v1 enc" / "esp-e2ee v1 mac").
struct Keys {
  uint8_t enc[32];
  size_t enc_len;
  uint8_t mac[kMacLen];
  Auth auth;
  /// The per-device key version, sent as "kv" (negative: not sent, a shared key).
  int64_t kv;
  /// The key itself (enc_len bytes): a rekey derives the next key from it.
  uint8_t raw[32];
  /// After a rekey: the device's X25519 public key, sent as "epk" until a config answer under the new key shows the
  /// server has it.
  uint8_t epk[kX25519Len];
  bool send_epk;
};

/// key_len must be 16, 24 or 32. Returns false otherwise.
bool keys_init(Keys *keys, const uint8_t *key, size_t key_len, Auth auth);
/// Decodes n hex digits (n even, either case) into n / 2 bytes; false on any other character.
bool hex_decode(const char *hex, size_t n, uint8_t *out);
/// Same as keys_init, from 32, 48 or 64 hex digits (NUL-terminated).
bool keys_from_hex(Keys *keys, const char *hex, Auth auth);

/// Length of the ciphertext for len plaintext bytes: PKCS#7 always adds 1..16 bytes.
constexpr size_t padded_len(size_t len) { return (len / kBlock + 1) * kBlock; }

/// Pads and encrypts in place: buf holds len plaintext bytes and must be buf_size >= padded_len(len).
/// iv is not modified. Returns false when the buffer is too small.
bool aes_cbc_encrypt(const Keys &keys, const uint8_t iv[kIvLen], uint8_t *buf, size_t len, size_t buf_size, size_t *ct_len);

/// Decrypts in place and checks the padding strictly (1..16, all pad bytes equal).
/// len must be a non-zero multiple of 16. Returns false on any failure, without saying which.
bool aes_cbc_decrypt(const Keys &keys, const uint8_t iv[kIvLen], uint8_t *buf, size_t len, size_t *pt_len);

/// mac = HMAC-SHA256(keys.mac, type || len(deviceid) as one byte || deviceid || iv || ct).
/// Returns false when deviceid is longer than kMaxDeviceIdLen.
bool compute_mac(const Keys &keys, MsgType type, const char *deviceid, const uint8_t iv[kIvLen], const uint8_t *ct, size_t ct_len,
                 uint8_t out[kMacLen]);

/// Constant-time comparison of n bytes.
bool equal_ct(const uint8_t *a, const uint8_t *b, size_t n);

/// Fills out with n random bytes (hardware RNG on the ESP8266, the OS on the host).
using RandomFn = void (*)(uint8_t *out, size_t n);

/// The device's half of a rekey (the package README, "Rekey"): a fresh X25519 key pair from random, the shared secret
/// with the server's public key, and
///   new_key = HKDF-SHA256(ikm = shared, salt = current.raw, info = "esp-e2ee v1 rekey" || 0x00 || deviceid ||
///                         uint32be(kv) || server_pub || device_pub, 16 bytes).
/// False (nothing written) for a device id over 64 bytes or a server key that gives the all-zero secret. BearSSL's
/// br_ec_c25519_m15, as the ESP8266 core ships it. The private key and the secret are wiped before it returns.
bool rekey_derive(const Keys &current, const char *deviceid, uint32_t kv, const uint8_t server_pub[kX25519Len], RandomFn random,
                  uint8_t new_key[kDeviceKeyLen], uint8_t device_pub[kX25519Len]);

}  // namespace e2ee
