// e2ee-tool: a host program built from lib/e2ee, for interop tests and as a stand-in device.
//
//   e2ee-tool seal    --key HEX --auth MODE --deviceid ID [--type T]  < plaintext   > body
//   e2ee-tool reading --key HEX --auth MODE --deviceid ID --seqn N --data JSON [--ack A]  > body
//   e2ee-tool open    --key HEX --auth MODE --deviceid ID [--type T]  < body        > plaintext
//   e2ee-tool command --key HEX --auth MODE --deviceid ID --last N   < body        > "SEQN <n> <cmd json>"
//   e2ee-tool post    --url http://127.0.0.1:PORT --key HEX --auth MODE --deviceid ID --seqn N --data JSON
//
// --type: reading (default), register, poll, command or config (bound into the MAC); --kv N adds the
// per-device key version to sealed bodies.
// Exit status: 0 ok, 1 rejected (the reason is on stderr), 2 usage or I/O error.
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "e2ee.h"

using namespace e2ee;

namespace {

void os_random(uint8_t *out, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = getrandom(out + got, n - got, 0);
    if (r > 0) got += size_t(r);
  }
}

struct MemStore : CounterStore {
  uint64_t value;
  explicit MemStore(uint64_t v) : value(v) {}
  bool load(uint64_t *out) override {
    *out = value;
    return true;
  }
  bool save(uint64_t v) override {
    value = v;
    return true;
  }
};

int usage() {
  std::cerr << "usage: e2ee-tool seal|reading|open|command|post --key HEX --auth none|hmac-sha256 --deviceid ID [...]\n";
  return 2;
}

std::string read_stdin() { return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()); }

bool build_body(const Keys &keys, MsgType type, const std::string &id, const std::string &plaintext, std::string *body) {
  std::vector<uint8_t> work(padded_len(plaintext.size()));
  std::vector<char> out(body_len(plaintext.size(), keys) + 1);
  size_t n = 0;
  if (!seal(keys, type, id.c_str(), reinterpret_cast<const uint8_t *>(plaintext.data()), plaintext.size(), os_random, work.data(), work.size(), out.data(), out.size(), &n)) return false;
  body->assign(out.data(), n);
  return true;
}

bool reading_body(const Keys &keys, const std::string &id, const std::string &data, uint64_t seqn, const std::string &ack, std::string *body) {
  std::vector<char> pt(data.size() + 70);
  size_t n = 0;
  const bool built = ack.empty() ? build_reading(data.c_str(), seqn, pt.data(), pt.size(), &n)
                                 : build_reading_ack(data.c_str(), seqn, std::stoull(ack), pt.data(), pt.size(), &n);
  if (!built) return false;
  return build_body(keys, MsgType::Reading, id, std::string(pt.data(), n), body);
}

bool parse_type(const std::string &name, MsgType *type) {
  static const struct { const char *name; MsgType type; } types[] = {
      {"reading", MsgType::Reading}, {"register", MsgType::Register}, {"poll", MsgType::Poll}, {"command", MsgType::Command}, {"config", MsgType::Config}};
  for (const auto &t : types) {
    if (name == t.name) {
      *type = t.type;
      return true;
    }
  }
  return false;
}

/// POST body to http://host:port/path; returns the status code or -1.
int http_post(const std::string &url, const std::string &path, const std::string &body, std::string *response) {
  const std::string prefix = "http://";
  if (url.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string hostport = url.substr(prefix.size());
  const size_t colon = hostport.rfind(':');
  const std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  const std::string port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  const int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    freeaddrinfo(res);
    if (fd >= 0) close(fd);
    return -1;
  }
  freeaddrinfo(res);
  const std::string req = "POST " + path + " HTTP/1.1\r\nHost: " + hostport + "\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  size_t sent = 0;
  while (sent < req.size()) {
    const ssize_t w = write(fd, req.data() + sent, req.size() - sent);
    if (w <= 0) break;
    sent += size_t(w);
  }
  std::string all;
  char buf[1024];
  ssize_t r;
  while ((r = read(fd, buf, sizeof(buf))) > 0) all.append(buf, size_t(r));
  close(fd);
  int status = -1;
  if (sscanf(all.c_str(), "HTTP/1.%*d %d", &status) != 1) return -1;
  const size_t split = all.find("\r\n\r\n");
  if (response) *response = split == std::string::npos ? "" : all.substr(split + 4);
  return status;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  std::map<std::string, std::string> opt;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strncmp(argv[i], "--", 2) != 0) return usage();
    opt[argv[i] + 2] = argv[i + 1];
  }
  const Auth auth = opt["auth"] == "hmac-sha256" ? Auth::HmacSha256 : Auth::None;
  if (opt["auth"] != "none" && opt["auth"] != "hmac-sha256") return usage();
  Keys keys;
  if (!keys_from_hex(&keys, opt["key"].c_str(), auth)) {
    std::cerr << "the key must be 32, 48 or 64 hex digits\n";
    return 2;
  }
  const std::string id = opt["deviceid"];
  if (opt.count("kv")) keys.kv = int64_t(std::stoull(opt["kv"]));
  MsgType type = MsgType::Reading;
  if (opt.count("type") && !parse_type(opt["type"], &type)) return usage();

  if (cmd == "seal") {
    std::string body;
    if (!build_body(keys, type, id, read_stdin(), &body)) return 2;
    std::cout << body;
    return 0;
  }
  if (cmd == "reading" || cmd == "post") {
    std::string body;
    if (!reading_body(keys, id, opt.count("data") ? opt["data"] : "{}", std::stoull(opt["seqn"]), opt.count("ack") ? opt["ack"] : "", &body)) return 2;
    if (cmd == "reading") {
      std::cout << body;
      return 0;
    }
    std::string response;
    const int status = http_post(opt["url"], "/api/devices/" + id + "/readings", body, &response);
    std::cout << status << " " << response << "\n";
    return status == 200 ? 0 : 1;
  }
  if (cmd == "open" || cmd == "command") {
    const std::string body = read_stdin();
    std::vector<uint8_t> out(body.size() + 1);
    if (cmd == "open") {
      size_t n = 0;
      const OpenStatus st = open(keys, type, id.c_str(), body.data(), body.size(), out.data(), out.size(), &n);
      if (st != OpenStatus::Ok) {
        std::cerr << (st == OpenStatus::BadBody ? "bad body\n" : "rejected\n");
        return 1;
      }
      std::cout.write(reinterpret_cast<const char *>(out.data()), std::streamsize(n));
      return 0;
    }
    MemStore store(opt.count("last") ? std::stoull(opt["last"]) : 0);
    DownlinkGuard guard(store);
    guard.begin();
    Command c;
    const CommandStatus st = guard.accept(keys, id.c_str(), body.data(), body.size(), out.data(), out.size(), &c);
    static const char *names[] = {"ok", "bad body", "rejected", "bad command", "replay", "store failed", "rekey"};
    if (st == CommandStatus::Rekey) {
      std::cout << "SEQN " << c.seqn << " rekey " << c.rekey_kv << "\n";
      return 0;
    }
    if (st != CommandStatus::Ok) {
      std::cerr << names[int(st)] << "\n";
      return 1;
    }
    std::cout << "SEQN " << c.seqn << " " << std::string(c.cmd.ptr, c.cmd.len) << "\n";
    return 0;
  }
  return usage();
}
