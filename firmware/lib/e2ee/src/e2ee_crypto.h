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

}  // namespace e2ee
