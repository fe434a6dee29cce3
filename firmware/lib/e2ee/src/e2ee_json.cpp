#include "e2ee_json.h"

#include <string.h>

namespace e2ee {

namespace {

struct Cursor {
  const char *p;
  const char *end;
};

void skip_ws(Cursor &c) {
  while (c.p < c.end && (*c.p == ' ' || *c.p == '\t' || *c.p == '\n' || *c.p == '\r')) c.p++;
}

/// Skips a string starting at the opening quote; sets raw to its content.
bool skip_string(Cursor &c, Span *raw, bool *escaped) {
  if (c.p >= c.end || *c.p != '"') return false;
  const char *start = ++c.p;
  bool esc = false;
  while (c.p < c.end) {
    const char ch = *c.p;
    if (ch == '\\') {
      esc = true;
      c.p += 2;
      continue;
    }
    if (ch == '"') {
      if (raw) *raw = {start, size_t(c.p - start)};
      if (escaped) *escaped = esc;
      c.p++;
      return true;
    }
    if (static_cast<unsigned char>(ch) < 0x20) return false;
    c.p++;
  }
  return false;
}

bool skip_value(Cursor &c, int depth) {
  if (depth > kMaxDepth) return false;
  skip_ws(c);
  if (c.p >= c.end) return false;
  const char ch = *c.p;
  if (ch == '"') return skip_string(c, nullptr, nullptr);
  if (ch == '{' || ch == '[') {
    const char close = ch == '{' ? '}' : ']';
    c.p++;
    skip_ws(c);
    if (c.p < c.end && *c.p == close) {
      c.p++;
      return true;
    }
    for (;;) {
      if (ch == '{') {
        skip_ws(c);
        if (!skip_string(c, nullptr, nullptr)) return false;
        skip_ws(c);
        if (c.p >= c.end || *c.p != ':') return false;
        c.p++;
      }
      if (!skip_value(c, depth + 1)) return false;
      skip_ws(c);
      if (c.p >= c.end) return false;
      if (*c.p == ',') {
        c.p++;
        continue;
      }
      if (*c.p == close) {
        c.p++;
        return true;
      }
      return false;
    }
  }
  // number, true, false, null: a run of the characters they are made of
  const char *start = c.p;
  while (c.p < c.end && strchr("0123456789+-.eEtrufalsn", *c.p) != nullptr) c.p++;
  return c.p > start;
}

}  // namespace

bool json_member(const char *json, size_t n, const char *key, Span *value, bool *is_string) {
  if (json == nullptr || key == nullptr) return false;
  Cursor c{json, json + n};
  skip_ws(c);
  if (c.p >= c.end || *c.p != '{') return false;
  c.p++;
  skip_ws(c);
  if (c.p < c.end && *c.p == '}') return false;
  const size_t key_len = strlen(key);
  bool found = false;
  // The whole object is checked, not just up to the member: truncated or trailing garbage fails.
  for (;;) {
    skip_ws(c);
    Span name;
    bool escaped = false;
    if (!skip_string(c, &name, &escaped)) return false;
    skip_ws(c);
    if (c.p >= c.end || *c.p != ':') return false;
    c.p++;
    skip_ws(c);
    const bool match = !escaped && name.len == key_len && memcmp(name.ptr, key, key_len) == 0;
    const char *start = c.p;
    const bool str = c.p < c.end && *c.p == '"';
    Span s;
    if (str) {
      if (!skip_string(c, &s, nullptr)) return false;
    } else if (!skip_value(c, 1)) {
      return false;
    }
    if (match && !found) {
      found = true;
      if (value) *value = str ? s : Span{start, size_t(c.p - start)};
      if (is_string) *is_string = str;
    }
    skip_ws(c);
    if (c.p >= c.end) return false;
    if (*c.p == ',') {
      c.p++;
      continue;
    }
    if (*c.p != '}') return false;
    c.p++;
    skip_ws(c);
    return found && c.p == c.end;
  }
}

bool json_array_item(const char *json, size_t n, size_t index, Span *item) {
  if (json == nullptr) return false;
  Cursor c{json, json + n};
  skip_ws(c);
  if (c.p >= c.end || *c.p != '[') return false;
  c.p++;
  skip_ws(c);
  if (c.p < c.end && *c.p == ']') return false;
  for (size_t i = 0;; i++) {
    skip_ws(c);
    const char *start = c.p;
    if (!skip_value(c, 1)) return false;
    if (i == index) {
      if (item) *item = {start, size_t(c.p - start)};
      return true;
    }
    skip_ws(c);
    if (c.p >= c.end || *c.p != ',') return false;
    c.p++;
  }
}

bool json_string(const char *json, size_t n, const char *key, Span *value) {
  bool is_string = false;
  Span s;
  if (!json_member(json, n, key, &s, &is_string) || !is_string) return false;
  if (memchr(s.ptr, '\\', s.len) != nullptr) return false;
  *value = s;
  return true;
}

bool json_uint(const char *json, size_t n, const char *key, uint64_t *value) {
  bool is_string = false;
  Span s;
  if (!json_member(json, n, key, &s, &is_string) || is_string || s.len == 0 || s.len > 16) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < s.len; i++) {
    if (s.ptr[i] < '0' || s.ptr[i] > '9') return false;
    v = v * 10 + uint64_t(s.ptr[i] - '0');
  }
  if (v > (uint64_t(1) << 53) - 1) return false;
  *value = v;
  return true;
}

bool json_bool(const char *json, size_t n, const char *key, bool *value) {
  Span s;
  bool is_string = false;
  if (!json_member(json, n, key, &s, &is_string) || is_string) return false;
  if (s.len == 4 && memcmp(s.ptr, "true", 4) == 0) {
    *value = true;
    return true;
  }
  if (s.len == 5 && memcmp(s.ptr, "false", 5) == 0) {
    *value = false;
    return true;
  }
  return false;
}

}  // namespace e2ee
