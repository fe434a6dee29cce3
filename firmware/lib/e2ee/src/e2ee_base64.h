#pragma once
/// Standard base64 (RFC 4648 section 4) with padding, on caller buffers.
#include <stddef.h>
#include <stdint.h>

namespace e2ee {

/// Characters needed to encode n bytes (without the terminating NUL).
constexpr size_t base64_encoded_len(size_t n) { return 4 * ((n + 2) / 3); }
/// Upper bound of the bytes that text of length n decodes to.
constexpr size_t base64_decoded_max(size_t n) { return 3 * (n / 4); }

/// Encodes n bytes. out must hold base64_encoded_len(n) + 1 bytes; the text is NUL-terminated.
/// Returns false (and writes nothing) when out_size is too small.
bool base64_encode(const uint8_t *in, size_t n, char *out, size_t out_size, size_t *out_len);

/// Strict decode: standard alphabet, length a multiple of 4, padding only at the end.
/// Returns false on bad input or when out_size is too small.
bool base64_decode(const char *in, size_t n, uint8_t *out, size_t out_size, size_t *out_len);

}  // namespace e2ee
