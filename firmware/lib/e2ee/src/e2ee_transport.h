#pragma once
/// How the device's uplinks travel and its downlinks come back. e2ee::Device sees one interface, Transport: "send
/// this uplink, give me its answer", plus downlinks that arrive on their own (MQTT). Two implementations:
/// HttpTransport (the routes of the README's device protocol, over the board's Http) and MqttTransport (the README's
/// MQTT topics, over the board's MqttClient: PubSubClient on the device, libmosquitto in e2ee-tool, a fake broker in
/// the host tests). No heap: every buffer is a member or the caller's.
#include <stddef.h>
#include <stdint.h>

#include "e2ee_crypto.h"

namespace e2ee {

/// Negative exchange results. kHttpConnectFailed is the core's HTTPC_ERROR_CONNECTION_FAILED: no connection, so
/// nothing was sent (the device may use that uplink's SEQN again). Other negative codes are the client's own.
constexpr int kHttpConnectFailed = -1;
constexpr int kHttpTooLarge = -100;   ///< the answer does not fit the receive buffer: not read
constexpr int kHttpTruncated = -101;  ///< the answer ended before its Content-Length
constexpr int kMqttPublishFailed = -110;  ///< connected, but the publish could not be written (it may have left)
constexpr int kMqttNoAnswer = -111;       ///< published; no config answer came on `down` in time
/// An uplink sent with no answer to wait for (a reading over MQTT): done as far as the device can tell.
constexpr int kSent = 202;

/// Milliseconds since boot; wraps around after 49 days, which the device handles.
class Clock {
 public:
  virtual uint32_t millis() = 0;

 protected:
  ~Clock() = default;  // not deleted through this interface: no virtual destructor, no operator delete
};

/// One HTTP request to the backend (the board implements it).
class Http {
 public:
  /// POSTs body[0..body_len) as application/json to url, or GETs url when body is null. A 2xx answer's body is read
  /// into rx, NUL-terminated, *rx_len bytes, only when it fits in rx_size - 1 bytes (else kHttpTooLarge).
  /// Returns the HTTP status, or a negative code (above, or the client's).
  virtual int exchange(const char *url, const char *body, size_t body_len, char *rx, size_t rx_size, size_t *rx_len) = 0;
  /// The client's words for a negative code (HTTPClient::errorToString on the device).
  virtual const char *error_text(int code) = 0;

 protected:
  ~Http() = default;  // not deleted through this interface: no virtual destructor, no operator delete
};

/// An HTTP answer's body as it comes off the connection, whatever its framing: Content-Length, chunked (RFC 9112 7.1,
/// extensions and trailers skipped), or up to the close. Bytes beyond the buffer are read and dropped, and the answer
/// is refused whole: a board reads the stream into feed() until it returns false or the connection ends, then asks
/// result(). No heap, no state but a few counters.
class HttpBody {
 public:
  enum class Framing : uint8_t { Length, Chunked, Close };
  /// length: the Content-Length (Length only). out: size - 1 bytes of body and a NUL.
  HttpBody(Framing framing, size_t length, char *out, size_t size) : framing_(framing), left_(length), out_(out), size_(size) {
    if (size_ > 0) out_[0] = '\0';
    if (framing_ == Framing::Chunked) left_ = 0, state_ = State::Size;
    if (framing_ == Framing::Length && left_ == 0) state_ = State::Done;
  }
  /// Takes the next bytes of the stream; false once the body is complete or malformed (stop reading).
  bool feed(const char *data, size_t len);
  /// After the body is complete or the connection ended: 0 with the body in out (*len bytes, NUL-terminated),
  /// kHttpTooLarge, or kHttpTruncated (ended early, or malformed chunking).
  int result(size_t *len) const;
  bool done() const { return state_ == State::Done || state_ == State::Bad; }

 private:
  enum class State : uint8_t { Data, Size, Extension, SizeLf, ChunkCr, ChunkLf, Trailer, TrailerLine, TrailerEnd, Done, Bad };
  void put(char c);
  Framing framing_;
  State state_ = State::Data;
  size_t left_;       ///< bytes left in the body (Length) or the chunk (Chunked)
  size_t digits_ = 0; ///< hex digits of the chunk size read
  char *out_;
  size_t size_;
  size_t len_ = 0;
  bool over_ = false;
};

/// One uplink as the device hands it over: its type, whether it is sealed (plain mode's registration and poll are
/// not), and its body.
struct Uplink {
  MsgType kind;
  bool sealed;
  const char *body;  ///< null: a plain poll (no body)
  size_t len;
  bool answer;       ///< a config answer comes back (registration, poll, a sleeper's reading); over MQTT it is awaited
};

/// Where a transport hands the downlinks it receives (the device).
class Downlinks {
 public:
  /// A downlink arrived. True when it is the config answer the device waits for (then the transport gives it back
  /// as the exchange's answer); anything else the device takes (a command) or drops.
  virtual bool downlink(const char *payload, size_t len) = 0;

 protected:
  ~Downlinks() = default;
};

class Transport {
 public:
  /// Checks the settings for device id; nullptr, or the sentence that says why they cannot work (the boot halts).
  virtual const char *begin(const char *id, Auth auth, Downlinks &sink) = 0;
  /// Sends the uplink. Its answer (the body of an HTTP 2xx; over MQTT the config answer to a registration or poll)
  /// goes into rx, NUL-terminated, *rx_len bytes. Returns an HTTP status (over MQTT: 200 answered, kSent), or a
  /// negative code; kHttpConnectFailed only when nothing was sent.
  virtual int exchange(const Uplink &up, char *rx, size_t rx_size, size_t *rx_len) = 0;
  /// Between exchanges: keeps the link alive and hands over downlinks that arrived (MQTT). Never blocks.
  virtual void service() = 0;
  /// Waits up to ms for downlinks that arrive on their own (MQTT: what the broker queued while the device slept),
  /// handing them over; at once when the transport has none (HTTP).
  virtual void linger(uint32_t ms) { (void)ms; }
  /// "HTTP" or "MQTT", and the address as the log names it.
  virtual const char *name() const = 0;
  virtual const char *where() const = 0;
  virtual const char *error_text(int code) = 0;

 protected:
  ~Transport() = default;
};

/// The README's HTTP routes: POST <url>/api/devices/<id> (register), .../readings, .../poll, and in plain mode
/// GET <url>/api/devices/<id> (the seed's poll).
class HttpTransport : public Transport {
 public:
  /// backend_url as written in secrets.h; begin() checks and normalises it. Kept by pointer: it must outlive this.
  HttpTransport(Http &http, const char *backend_url) : http_(http), backend_url_(backend_url) {}
  const char *begin(const char *id, Auth auth, Downlinks &sink) override;
  int exchange(const Uplink &up, char *rx, size_t rx_size, size_t *rx_len) override;
  void service() override {}
  const char *name() const override { return "HTTP"; }
  const char *where() const override { return url_; }
  const char *error_text(int code) override { return http_.error_text(code); }

 private:
  Http &http_;
  const char *backend_url_;
  const char *id_ = "";
  char url_[129] = "";
  char request_url_[256] = "";
};

/// What MqttTransport asks of an MQTT client. The client hands every message it receives to
/// MqttTransport::on_message (PubSubClient's callback, libmosquitto's on_message).
class MqttClient {
 public:
  struct Login {
    const char *client_id;     ///< the device id
    const char *user;          ///< the broker user (the id with ':' as %3A)
    const char *password;
    const char *will_topic;    ///< <prefix>/<id>/status
    const char *will_payload;  ///< {"online":false}, not retained
    const char *subscribe;     ///< <prefix>/<id>/down, subscribed at QoS 1 once connected
  };
  /// Connects with a persistent session (clean session off) and the Last Will, then subscribes; false when either
  /// fails.
  virtual bool connect(const Login &login) = 0;
  virtual bool connected() = 0;
  /// Publishes, never retained (QoS 1 where the client can; PubSubClient publishes QoS 0 only). False when it could
  /// not be written.
  virtual bool publish(const char *topic, const char *payload, size_t len) = 0;
  /// Services the connection, waiting up to wait_ms for traffic; received messages go to on_message meanwhile.
  virtual void poll(uint32_t wait_ms) = 0;
  /// The client's words for why the last connect failed.
  virtual const char *error_text() = 0;

 protected:
  ~MqttClient() = default;
};

/// What secrets.h sets for MQTT.
struct MqttSettings {
  const char *host;      ///< E2EE_MQTT_HOST
  uint16_t port;         ///< E2EE_MQTT_PORT
  const char *user;      ///< E2EE_MQTT_USER
  const char *password;  ///< E2EE_MQTT_PASSWORD
  const char *prefix;    ///< E2EE_MQTT_PREFIX
};

/// The README's MQTT topics: uplinks published to <prefix>/<id>/up/<type>, downlinks (config answers and commands)
/// received on <prefix>/<id>/down, online/offline on <prefix>/<id>/status (the Last Will). Connects when an uplink
/// needs it; a registration or poll waits up to kAnswerMs for its answer, handing every other downlink to the
/// device meanwhile.
class MqttTransport : public Transport {
 public:
  static constexpr uint32_t kAnswerMs = 5000;  ///< as long as HTTPClient waits for an answer
  static constexpr uint32_t kPollMs = 20;
  static constexpr size_t kPrefixMax = 48;

  MqttTransport(MqttClient &client, Clock &clock, const MqttSettings &settings) : client_(client), clock_(clock), settings_(settings) {}
  const char *begin(const char *id, Auth auth, Downlinks &sink) override;
  int exchange(const Uplink &up, char *rx, size_t rx_size, size_t *rx_len) override;
  void service() override;
  void linger(uint32_t ms) override;
  const char *name() const override { return "MQTT"; }
  const char *where() const override { return where_; }
  const char *error_text(int code) override;
  /// A message the client received.
  void on_message(const char *topic, const char *payload, size_t len);
  /// The topic a device's uplink of this kind goes to (into out); false when it does not fit.
  bool uplink_topic(MsgType kind, char *out, size_t size) const;

 private:
  bool connect();

  MqttClient &client_;
  Clock &clock_;
  const MqttSettings &settings_;
  Downlinks *sink_ = nullptr;
  const char *id_ = "";
  char where_[80] = "";
  char down_[128] = "";
  char status_[128] = "";
  char up_[128] = "";
  // The exchange under way: where its answer goes.
  bool awaiting_ = false;
  bool answered_ = false;
  bool too_large_ = false;
  char *rx_ = nullptr;
  size_t rx_size_ = 0;
  size_t *rx_len_ = nullptr;
};

}  // namespace e2ee
