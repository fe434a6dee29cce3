#pragma once
/// A bounded scanner for the few JSON shapes the firmware reads: the members of one
/// top-level object. No allocation; values are returned as spans into the input.
#include <stddef.h>
#include <stdint.h>

namespace e2ee {

struct Span {
  const char *ptr;
  size_t len;
};

/// Finds member `key` of the JSON object in [json, json+n) and returns its raw value text
/// (for a string: without the quotes). Nested values are skipped up to kMaxDepth levels.
/// Returns false when the text is not an object, the key is absent, or the input is malformed.
bool json_member(const char *json, size_t n, const char *key, Span *value, bool *is_string = nullptr);

/// Member as a string without escape sequences (base64 never has any).
bool json_string(const char *json, size_t n, const char *key, Span *value);
/// Member as a non-negative integer that fits 53 bits (the JavaScript safe range).
bool json_uint(const char *json, size_t n, const char *key, uint64_t *value);
/// Member as true or false.
bool json_bool(const char *json, size_t n, const char *key, bool *value);

/// Element `index` of the JSON array in [json, json+n) as raw text (objects, numbers...).
/// Returns false when the text is not an array or has fewer elements.
bool json_array_item(const char *json, size_t n, size_t index, Span *item);

constexpr int kMaxDepth = 8;

}  // namespace e2ee
