#include "e2ee_owner.h"

#include "e2ee_text.h"

#include <string.h>

namespace e2ee {

UrlStatus normalize_backend_url(const char *url, char *out, size_t out_size) {
  if (out_size > 0) out[0] = '\0';
  if (url == nullptr || url[0] == '\0') return UrlStatus::Empty;
  if (strncmp(url, "https://", 8) == 0) return UrlStatus::Https;
  if (strncmp(url, "http://", 7) != 0) return UrlStatus::NoScheme;
  size_t len = strlen(url);
  while (len > 7 && url[len - 1] == '/') len--;
  // The host runs to the first ':' (port) or '/' (a path prefix, e.g. behind a reverse proxy).
  const char *host = url + 7;
  const char *end = url + len;
  const char *p = host;
  while (p < end && *p != ':' && *p != '/') p++;
  if (p == host) return UrlStatus::NoHost;
  if (p < end && *p == ':') {
    uint32_t port = 0;
    const char *digits = ++p;
    while (p < end && *p >= '0' && *p <= '9' && port <= 65535) port = port * 10 + uint32_t(*p++ - '0');
    if (p == digits || port == 0 || port > 65535 || (p < end && *p != '/')) return UrlStatus::BadPort;
  }
  if (len + 1 > out_size) return UrlStatus::TooLong;
  memcpy(out, url, len);
  out[len] = '\0';
  return UrlStatus::Ok;
}

const char *url_status_text(UrlStatus status) {
  switch (status) {
    case UrlStatus::Ok: return E2EE_TEXT("ok");
    case UrlStatus::Empty: return E2EE_TEXT("E2EE_BACKEND_URL is empty (e.g. http://192.168.1.10:1880)");
    case UrlStatus::NoScheme: return E2EE_TEXT("E2EE_BACKEND_URL must start with http:// (e.g. http://192.168.1.10:1880)");
    case UrlStatus::Https: return E2EE_TEXT("E2EE_BACKEND_URL must be http:// (no TLS here; the data is end-to-end encrypted)");
    case UrlStatus::NoHost: return E2EE_TEXT("E2EE_BACKEND_URL has no host");
    case UrlStatus::BadPort: return E2EE_TEXT("E2EE_BACKEND_URL has a port outside 1..65535");
    case UrlStatus::TooLong: return E2EE_TEXT("E2EE_BACKEND_URL is too long");
  }
  return E2EE_TEXT("E2EE_BACKEND_URL is not usable");
}

bool RefusalStreak::record(int http_status) {
  if (http_status != 400) {
    // Only an accepted uplink ends a streak: a network error says nothing about why they were refused.
    if (http_status >= 200 && http_status < 300) count_ = 0;
    return false;
  }
  return ++count_ == threshold_;
}

}  // namespace e2ee
