#include "e2ee_base64.h"

namespace e2ee {

static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int decode_char(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_encode(const uint8_t *in, size_t n, char *out, size_t out_size, size_t *out_len) {
  const size_t need = base64_encoded_len(n);
  if (out == nullptr || out_size < need + 1) return false;
  size_t o = 0;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t(in[i]) << 16) | (uint32_t(in[i + 1]) << 8) | in[i + 2];
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = kAlphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = uint32_t(in[i]) << 16;
    if (i + 1 < n) v |= uint32_t(in[i + 1]) << 8;
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = (i + 1 < n) ? kAlphabet[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  if (out_len) *out_len = o;
  return true;
}

bool base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size, size_t *out_len) {
  if (n % 4 != 0) return false;
  size_t pad = 0;
  if (n >= 1 && in[n - 1] == '=') pad++;
  if (n >= 2 && in[n - 2] == '=') pad++;
  const size_t len = 3 * (n / 4) - pad;
  if (len > out_size) return false;
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int d[4];
    for (int k = 0; k < 4; k++) {
      const bool padding_slot = (i + 4 == n) && (k >= 4 - int(pad));
      d[k] = padding_slot ? 0 : decode_char(in[i + k]);
      if (d[k] < 0) return false;
    }
    const uint32_t v = (uint32_t(d[0]) << 18) | (uint32_t(d[1]) << 12) | (uint32_t(d[2]) << 6) | uint32_t(d[3]);
    const uint8_t bytes[3] = {uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    for (int k = 0; k < 3 && o < len; k++) out[o++] = bytes[k];
  }
  if (out_len) *out_len = len;
  return true;
}

}  // namespace e2ee
