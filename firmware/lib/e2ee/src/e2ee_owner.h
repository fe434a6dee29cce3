#pragma once
/// What a device owner gets wrong, caught on the device and said in plain words on serial: a backend URL that
/// cannot work, and readings the backend keeps refusing.
#include <stddef.h>
#include <stdint.h>

namespace e2ee {

enum class UrlStatus : uint8_t {
  Ok,
  Empty,     ///< no URL
  NoScheme,  ///< "192.168.1.10:1880": the http:// is missing
  Https,     ///< https:// needs a TLS client the firmware does not use; the payload is end-to-end encrypted anyway
  NoHost,    ///< "http://" or "http://:1880"
  BadPort,   ///< a port that is not 1..65535
  TooLong,   ///< does not fit the buffer
};

/// Checks the backend URL and writes it to out without trailing slashes ("http://host:1880/" → "http://host:1880",
/// which would otherwise make every request go to "//api/..." and get 404). out is NUL-terminated.
UrlStatus normalize_backend_url(const char *url, char *out, size_t out_size);

/// What to tell the owner about a URL status, in one sentence.
const char *url_status_text(UrlStatus status);

/// Counts uplinks (registrations, readings) refused in a row (HTTP 400); says when to explain what that usually means:
/// once, at the threshold-th refusal in a row, and again only after one was accepted in between.
class RefusalStreak {
 public:
  explicit RefusalStreak(uint32_t threshold) : threshold_(threshold ? threshold : 1) {}
  /// Records an uplink's HTTP status; true when the explanation is due now.
  bool record(int http_status);
  uint32_t count() const { return count_; }

 private:
  uint32_t threshold_;
  uint32_t count_ = 0;
};

}  // namespace e2ee
