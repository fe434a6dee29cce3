#include "e2ee_transport.h"

#include "e2ee_text.h"

#include <stdio.h>
#include <string.h>

#include "e2ee_owner.h"

namespace e2ee {

namespace {

/// The uplink route (HTTP) or topic suffix (MQTT) of a message type.
const char *type_name(MsgType kind) {
  switch (kind) {
    case MsgType::Register: return E2EE_TEXT("register");
    case MsgType::Poll: return E2EE_TEXT("poll");
    default: return E2EE_TEXT("reading");
  }
}

/// A topic level may not hold the wildcards, a '/' splits levels, and the prefix may not be empty.
bool valid_prefix(const char *prefix) {
  const size_t len = prefix ? strlen(prefix) : 0;
  if (len == 0 || len > MqttTransport::kPrefixMax || prefix[0] == '/' || prefix[len - 1] == '/' || prefix[0] == '$') return false;
  return strpbrk(prefix, "+#") == nullptr;
}

}  // namespace

void HttpBody::put(char c) {
  if (len_ + 1 < size_) {
    out_[len_++] = c;
    out_[len_] = '\0';
  } else {
    over_ = true;
  }
}

bool HttpBody::feed(const char *data, size_t len) {
  for (size_t i = 0; i < len && !done(); i++) {
    const char c = data[i];
    switch (state_) {
      case State::Data:
        put(c);
        if (framing_ == Framing::Length && --left_ == 0) state_ = State::Done;
        if (framing_ == Framing::Chunked && --left_ == 0) state_ = State::ChunkCr;
        break;
      case State::Size: {
        const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v >= 0 && digits_ < 8) {
          left_ = left_ * 16 + size_t(v);
          digits_++;
        } else if (digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          state_ = State::Extension;
        } else if (digits_ > 0 && c == '\r') {
          state_ = State::SizeLf;
        } else {
          state_ = State::Bad;
        }
        break;
      }
      case State::Extension:
        if (c == '\r') state_ = State::SizeLf;
        break;
      case State::SizeLf:
        if (c != '\n') {
          state_ = State::Bad;
        } else if (left_ == 0) {
          state_ = State::Trailer;  // the last chunk: trailers, then an empty line
        } else {
          state_ = State::Data;
        }
        digits_ = 0;
        break;
      case State::ChunkCr:
        state_ = c == '\r' ? State::ChunkLf : State::Bad;
        break;
      case State::ChunkLf:
        state_ = c == '\n' ? State::Size : State::Bad;
        break;
      case State::Trailer:  // at the start of a trailer line: an empty one ends the body
        state_ = c == '\r' ? State::TrailerEnd : State::TrailerLine;
        break;
      case State::TrailerLine:
        if (c == '\n') state_ = State::Trailer;
        break;
      case State::TrailerEnd:
        state_ = c == '\n' ? State::Done : State::Bad;
        break;
      case State::Done:
      case State::Bad:
        break;
    }
  }
  return !done();
}

int HttpBody::result(size_t *len) const {
  *len = 0;
  if (over_) return kHttpTooLarge;
  // Close-delimited: whatever came before the close is the body.
  if (state_ != State::Done && !(framing_ == Framing::Close && state_ == State::Data)) return kHttpTruncated;
  *len = len_;
  return 0;
}

const char *HttpTransport::begin(const char *id, Auth, Downlinks &) {
  id_ = id;
  const UrlStatus status = normalize_backend_url(backend_url_, url_, sizeof(url_));
  return status == UrlStatus::Ok ? nullptr : url_status_text(status);
}

int HttpTransport::exchange(const Uplink &up, char *rx, size_t rx_size, size_t *rx_len) {
  // The plain poll is GET /api/devices/:id (the seed's route).
  const char *route = up.kind == MsgType::Reading ? E2EE_TEXT("/readings") : up.kind == MsgType::Poll && up.sealed ? E2EE_TEXT("/poll") : "";
  snprintf(request_url_, sizeof(request_url_), E2EE_TEXT("%s/api/devices/%s%s"), url_, id_, route);
  const bool with_body = up.sealed || up.kind == MsgType::Register;
  return http_.exchange(request_url_, with_body ? up.body : nullptr, up.len, rx, rx_size, rx_len);
}

const char *MqttTransport::begin(const char *id, Auth auth, Downlinks &sink) {
  id_ = id;
  sink_ = &sink;
  if (auth != Auth::HmacSha256) return E2EE_TEXT("MQTT needs E2EE_AUTH_HMAC 1 (the plain mode is HTTP only)");
  if (!settings_.host || !settings_.host[0] || settings_.port == 0) return E2EE_TEXT("E2EE_MQTT_HOST and E2EE_MQTT_PORT must name the broker");
  if (!valid_prefix(settings_.prefix)) return E2EE_TEXT("E2EE_MQTT_PREFIX must be 1 to 48 characters, without '+', '#' or a '/' at either end");
  if (!settings_.user || !settings_.password) return E2EE_TEXT("E2EE_MQTT_USER and E2EE_MQTT_PASSWORD must be set (esp-e2ee-keys --mqtt writes them)");
  snprintf(where_, sizeof(where_), E2EE_TEXT("mqtt://%s:%u"), settings_.host, unsigned(settings_.port));
  const int down = snprintf(down_, sizeof(down_), E2EE_TEXT("%s/%s/down"), settings_.prefix, id);
  const int status = snprintf(status_, sizeof(status_), E2EE_TEXT("%s/%s/status"), settings_.prefix, id);
  if (down <= 0 || size_t(down) >= sizeof(down_) || status <= 0 || size_t(status) >= sizeof(status_)) return E2EE_TEXT("E2EE_MQTT_PREFIX is too long");
  return nullptr;
}

bool MqttTransport::uplink_topic(MsgType kind, char *out, size_t size) const {
  const int n = snprintf(out, size, E2EE_TEXT("%s/%s/up/%s"), settings_.prefix, id_, type_name(kind));
  return n > 0 && size_t(n) < size;
}

bool MqttTransport::connect() {
  static const char kOffline[] = "{\"online\":false}";
  static const char kOnline[] = "{\"online\":true}";
  const MqttClient::Login login{id_, settings_.user, settings_.password, status_, kOffline, down_};
  if (!client_.connect(login)) return false;
  // Unsealed and not retained: the backend shows it as the device's connected flag and nothing else (README, MQTT).
  client_.publish(status_, kOnline, sizeof(kOnline) - 1);
  return true;
}

int MqttTransport::exchange(const Uplink &up, char *rx, size_t rx_size, size_t *rx_len) {
  *rx_len = 0;
  if (!up.sealed || !uplink_topic(up.kind, up_, sizeof(up_))) return kMqttPublishFailed;
  if (!client_.connected() && !connect()) return kHttpConnectFailed;
  awaiting_ = up.answer;
  answered_ = false;
  too_large_ = false;
  rx_ = rx;
  rx_size_ = rx_size;
  rx_len_ = rx_len;
  if (!client_.publish(up_, up.body, up.len)) {
    awaiting_ = false;
    return kMqttPublishFailed;
  }
  if (!awaiting_) return kSent;
  const uint32_t start = clock_.millis();
  while (!answered_ && !too_large_ && client_.connected() && clock_.millis() - start < kAnswerMs) client_.poll(kPollMs);
  awaiting_ = false;
  if (answered_) return 200;
  return too_large_ ? kHttpTooLarge : kMqttNoAnswer;
}

void MqttTransport::service() {
  if (client_.connected()) client_.poll(0);
}

void MqttTransport::linger(uint32_t ms) {
  const uint32_t start = clock_.millis();
  while (client_.connected() && clock_.millis() - start < ms) client_.poll(kPollMs);
}

void MqttTransport::on_message(const char *topic, const char *payload, size_t len) {
  if (sink_ == nullptr || len == 0 || strcmp(topic, down_) != 0) return;
  if (!sink_->downlink(payload, len) || !awaiting_ || answered_) return;
  if (len >= rx_size_) {
    too_large_ = true;
    return;
  }
  memcpy(rx_, payload, len);
  rx_[len] = '\0';
  *rx_len_ = len;
  answered_ = true;
}

const char *MqttTransport::error_text(int code) {
  switch (code) {
    case kHttpConnectFailed: return client_.error_text();
    case kMqttPublishFailed: return E2EE_TEXT("publish failed");
    case kMqttNoAnswer: return E2EE_TEXT("no answer on the down topic");
    default: return E2EE_TEXT("error");
  }
}

}  // namespace e2ee
