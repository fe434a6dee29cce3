// Host tests of lib/e2ee (doctest). Run with `make -C firmware test` (g++, ASan+UBSan)
// or `pio test -e native`. Vectors come from the file the mocha tests read too.
#define DOCTEST_CONFIG_IMPLEMENT  // our own main(), as PlatformIO's doctest runner asks
#if __has_include(<doctest.h>)
#include <doctest.h>  // PlatformIO's doctest package
#else
#include <doctest/doctest.h>  // Debian's doctest-dev
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "e2ee.h"
#include "support.h"
#include <bearssl/bearssl.h>

using namespace e2ee;
using json = nlohmann::json;

#ifndef E2EE_VECTORS
#define E2EE_VECTORS "../test/fixtures/vectors.json"
#endif

static json vectors() {
  std::ifstream in(E2EE_VECTORS);
  REQUIRE_MESSAGE(in.good(), "cannot read " E2EE_VECTORS);
  return json::parse(in);
}

static std::vector<uint8_t> hex(const std::string &h) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(uint8_t(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

static Keys make_keys(const std::string &key_hex, Auth auth) {
  Keys k;
  REQUIRE(keys_from_hex(&k, key_hex.c_str(), auth));
  return k;
}

static void counting_random(uint8_t *out, size_t n) {
  static uint8_t c = 0;
  for (size_t i = 0; i < n; i++) out[i] = c++;
}

MsgType msg_type(const std::string &name) {
  if (name == "register") return MsgType::Register;
  if (name == "poll") return MsgType::Poll;
  if (name == "command") return MsgType::Command;
  if (name == "config") return MsgType::Config;
  return MsgType::Reading;
}

TEST_CASE("base64: RFC 4648 vectors, both directions") {
  const json all = vectors();
  for (const auto &v : all["base64"]) {
    const std::string text = v["text"], b64 = v["base64"];
    char out[16];
    size_t n = 0;
    REQUIRE(base64_encode(reinterpret_cast<const uint8_t *>(text.data()), text.size(), out, sizeof(out), &n));
    CHECK(std::string(out, n) == b64);
    uint8_t back[16];
    REQUIRE(base64_decode(b64.data(), b64.size(), back, sizeof(back), &n));
    CHECK(std::string(reinterpret_cast<char *>(back), n) == text);
  }
}

TEST_CASE("base64: buffer boundaries and bad input") {
  const uint8_t data[5] = {1, 2, 3, 4, 5};
  char out[9];  // needs 8 + NUL
  size_t n = 0;
  CHECK(base64_encode(data, 5, out, 9, &n));
  CHECK(n == 8);
  CHECK_FALSE(base64_encode(data, 5, out, 8, &n));
  uint8_t back[5];
  CHECK(base64_decode(out, 8, back, 5, &n));
  CHECK_FALSE(base64_decode(out, 8, back, 4, &n));
  for (const char *bad : {"A", "AB", "ABC", "A===", "AB=C", "ab!d", "QU JD"}) CHECK_FALSE(base64_decode(bad, strlen(bad), back, 5, &n));
}

TEST_CASE("AES-CBC: NIST SP 800-38A vectors (the unpadded blocks)") {
  const json all = vectors();
  for (const auto &v : all["nist_sp800_38a_cbc"]) {
    Keys k = make_keys(v["key"], Auth::None);
    const auto iv = hex(v["iv"]);
    const auto pt = hex(v["plaintext"]);
    uint8_t buf[80];
    memcpy(buf, pt.data(), pt.size());
    size_t ct_len = 0;
    REQUIRE(aes_cbc_encrypt(k, iv.data(), buf, pt.size(), sizeof(buf), &ct_len));
    CHECK(ct_len == 80);  // a whole block of padding after 64 aligned bytes
    CHECK(memcmp(buf, hex(v["ciphertext"]).data(), 64) == 0);
    size_t pt_len = 0;
    REQUIRE(aes_cbc_decrypt(k, iv.data(), buf, ct_len, &pt_len));
    CHECK(pt_len == 64);
    CHECK(memcmp(buf, pt.data(), 64) == 0);
  }
}

TEST_CASE("AES-CBC: the IV is not modified, exact blocks get a full pad block, buffers are checked") {
  Keys k = make_keys("000102030405060708090a0b0c0d0e0f", Auth::None);
  uint8_t iv[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
  for (size_t len : {0u, 1u, 15u, 16u, 17u, 31u, 32u, 48u}) {
    uint8_t buf[64] = {0};
    memset(buf, 'x', len);
    size_t ct = 0;
    CHECK_FALSE(aes_cbc_encrypt(k, iv, buf, len, padded_len(len) - 1, &ct));
    REQUIRE(aes_cbc_encrypt(k, iv, buf, len, padded_len(len), &ct));
    CHECK(ct == padded_len(len));
    CHECK(ct - len >= 1);
    CHECK(ct - len <= 16);
    for (uint8_t b : iv) CHECK(b == 9);
    size_t pt = 0;
    REQUIRE(aes_cbc_decrypt(k, iv, buf, ct, &pt));
    CHECK(pt == len);
  }
}

TEST_CASE("AES-CBC: strict padding; wrong lengths rejected") {
  Keys k = make_keys("000102030405060708090a0b0c0d0e0f", Auth::None);
  const uint8_t iv[16] = {0};
  // Build raw blocks with chosen "padding" by encrypting without padding: encrypt 32 bytes
  // (which pads with a third block), then drop that block.
  auto raw = [&](uint8_t last_bytes[16]) {
    static uint8_t buf[48];
    memset(buf, 'A', 16);
    memcpy(buf + 16, last_bytes, 16);
    size_t ct = 0;
    aes_cbc_encrypt(k, iv, buf, 32, sizeof(buf), &ct);
    return buf;  // first 32 bytes are the CBC encryption of the chosen 32 bytes
  };
  uint8_t block[16];
  size_t pt = 0;
  memset(block, 0, 16);  // pad byte 0
  CHECK_FALSE(aes_cbc_decrypt(k, iv, raw(block), 32, &pt));
  memset(block, 17, 16);  // pad byte over 16
  CHECK_FALSE(aes_cbc_decrypt(k, iv, raw(block), 32, &pt));
  memset(block, 4, 16);
  block[13] = 5;  // inconsistent pad bytes
  CHECK_FALSE(aes_cbc_decrypt(k, iv, raw(block), 32, &pt));
  memset(block, 4, 16);  // consistent
  CHECK(aes_cbc_decrypt(k, iv, raw(block), 32, &pt));
  CHECK(pt == 28);
  uint8_t buf[32] = {0};
  CHECK_FALSE(aes_cbc_decrypt(k, iv, buf, 0, &pt));
  CHECK_FALSE(aes_cbc_decrypt(k, iv, buf, 15, &pt));
}

TEST_CASE("wire: byte-for-byte equal to the Node-RED nodes (shared vectors), and opens them") {
  const json all = vectors();
  for (const auto &v : all["wire"]) {
    const Auth auth = v["auth"] == "hmac-sha256" ? Auth::HmacSha256 : Auth::None;
    Keys k = make_keys(v["key"], auth);
    if (auth == Auth::HmacSha256) {
      CHECK(std::vector<uint8_t>(k.enc, k.enc + k.enc_len) == hex(v["enc_key"]));
      CHECK(std::vector<uint8_t>(k.mac, k.mac + 32) == hex(v["mac_key"]));
    }
    const std::string pt = v["plaintext"], id = v["deviceid"];
    const MsgType type = msg_type(v.contains("type") ? std::string(v["type"]) : "reading");
    const auto iv = hex(v["iv"]);
    uint8_t work[64];
    char body[256];
    size_t len = 0;
    REQUIRE(seal_with_iv(k, type, id.c_str(), reinterpret_cast<const uint8_t *>(pt.data()), pt.size(), iv.data(), work, sizeof(work), body, sizeof(body), &len));
    CHECK(len == body_len(pt.size(), k));
    const json parsed = json::parse(std::string(body, len));
    CHECK(parsed["data"] == v["data"]);
    if (auth == Auth::HmacSha256) CHECK(parsed["mac"] == v["mac"]);
    else CHECK_FALSE(parsed.contains("mac"));
    uint8_t out[64];
    size_t out_len = 0;
    REQUIRE(open(k, type, id.c_str(), body, len, out, sizeof(out), &out_len) == OpenStatus::Ok);
    CHECK(std::string(reinterpret_cast<char *>(out), out_len) == pt);
    if (auth == Auth::HmacSha256) {
      // Opened as any other type (or direction), the MAC does not verify.
      for (const char *other : {"reading", "register", "poll", "command", "config"}) {
        if (msg_type(other) == type) continue;
        CHECK(open(k, msg_type(other), id.c_str(), body, len, out, sizeof(out), &out_len) == OpenStatus::Rejected);
      }
    }
  }
}

TEST_CASE("wire: every output buffer boundary") {
  Keys k = make_keys("000102030405060708090a0b0c0d0e0f", Auth::HmacSha256);
  for (size_t len : {0u, 15u, 16u, 17u, 100u}) {
    std::string pt(len, 'p');
    const size_t need = body_len(len, k);
    std::vector<char> body(need + 1);
    std::vector<uint8_t> work(padded_len(len));
    size_t n = 0;
    CHECK_FALSE(seal(k, MsgType::Reading, "d", reinterpret_cast<const uint8_t *>(pt.data()), len, counting_random, work.data(), work.size(), body.data(), need, &n));
    CHECK_FALSE(seal(k, MsgType::Reading, "d", reinterpret_cast<const uint8_t *>(pt.data()), len, counting_random, work.data(), work.size() - 1, body.data(), need + 1, &n));
    REQUIRE(seal(k, MsgType::Reading, "d", reinterpret_cast<const uint8_t *>(pt.data()), len, counting_random, work.data(), work.size(), body.data(), need + 1, &n));
    CHECK(n == need);
    CHECK(body[need] == '\0');
    std::vector<uint8_t> out(padded_len(len) + 1);
    CHECK(open(k, MsgType::Reading, "d", body.data(), n, out.data(), out.size() - 1, &n) == OpenStatus::BadBody);  // no room for the NUL
    CHECK(open(k, MsgType::Reading, "d", body.data(), need, out.data(), out.size(), &n) == OpenStatus::Ok);
    CHECK(n == len);
  }
  char small[8];
  size_t n = 0;
  CHECK_FALSE(build_reading("{}", 1, small, sizeof(small), &n));
  char exact[19];  // {"data":{},"SEQN":1} is 20 characters + NUL
  CHECK_FALSE(build_reading("{}", 1, exact, sizeof(exact), &n));
  char fits[21];
  REQUIRE(build_reading("{}", 1, fits, sizeof(fits), &n));
  CHECK(std::string(fits) == "{\"data\":{},\"SEQN\":1}");
  char big[64];
  REQUIRE(build_reading("{\"a0\":512}", 9007199254740991ULL, big, sizeof(big), &n));
  CHECK(std::string(big) == "{\"data\":{\"a0\":512},\"SEQN\":9007199254740991}");
}

TEST_CASE("wire: a corrupted MAC, IV, ciphertext, a missing MAC or another device id are rejected alike") {
  Keys k = make_keys("000102030405060708090a0b0c0d0e0f", Auth::HmacSha256);
  const char *pt = "{\"data\":{\"a0\":1},\"SEQN\":5}";
  uint8_t work[64];
  char body[256];
  size_t len = 0;
  REQUIRE(seal(k, MsgType::Reading, "dev", reinterpret_cast<const uint8_t *>(pt), strlen(pt), counting_random, work, sizeof(work), body, sizeof(body), &len));
  uint8_t out[64];
  size_t n = 0;
  REQUIRE(open(k, MsgType::Reading, "dev", body, len, out, sizeof(out), &n) == OpenStatus::Ok);
  CHECK(open(k, MsgType::Reading, "other", body, len, out, sizeof(out), &n) == OpenStatus::Rejected);
  std::string s(body, len);
  for (const char *field : {"\"iv\":\"", "\"data\":\"", "\"mac\":\""}) {
    std::string t = s;
    const size_t at = t.find(field) + strlen(field) + 2;
    t[at] = t[at] == 'A' ? 'B' : 'A';
    CHECK(open(k, MsgType::Reading, "dev", t.data(), t.size(), out, sizeof(out), &n) == OpenStatus::Rejected);
  }
  std::string no_mac = s.substr(0, s.find(",\"mac\"")) + "}";
  CHECK(open(k, MsgType::Reading, "dev", no_mac.data(), no_mac.size(), out, sizeof(out), &n) == OpenStatus::Rejected);
  for (const char *bad : {"", "[]", "{}", "{\"iv\":\"AAAA\",\"data\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}", "{\"iv\":1,\"data\":\"x\"}", "{\"iv\":\"", "not json"}) {
    CHECK(open(k, MsgType::Reading, "dev", bad, strlen(bad), out, sizeof(out), &n) == OpenStatus::BadBody);
  }
}

struct MemStore : CounterStore {
  bool has = false;
  uint64_t value = 0;
  int saves = 0;
  int fail_after = -1;  // fail the save with this index (0-based), simulating a power cut mid-write
  bool load(uint64_t *out) override {
    if (!has) return false;
    *out = value;
    return true;
  }
  bool save(uint64_t v) override {
    if (fail_after >= 0 && saves >= fail_after) return false;
    saves++;
    value = v;
    has = true;
    return true;
  }
};

TEST_CASE("sequence counter: resumes past every used number after a reboot at any point in a block") {
  const uint32_t block = 8;
  for (uint32_t used = 0; used <= 3 * block; used++) {
    MemStore store;
    uint64_t highest = 0;
    bool any = false;
    {
      SeqCounter boot1(store, block);
      boot1.begin();
      for (uint32_t i = 0; i < used; i++) {
        uint64_t s = 0;
        REQUIRE(boot1.next(&s));
        if (any) CHECK(s == highest + 1);
        highest = s;
        any = true;
      }
      CHECK(boot1.writes() == (used + block - 1) / block);
    }
    SeqCounter boot2(store, block);  // power cut: everything in RAM is gone
    boot2.begin();
    uint64_t s = 0;
    REQUIRE(boot2.next(&s));
    if (any) CHECK(s > highest);
    CHECK(s - (any ? highest : 0) <= block);  // at most one block skipped
  }
}

TEST_CASE("sequence counter: a number given back (never sent) is handed out again; no other number is") {
  MemStore store;
  SeqCounter seq(store, 4);
  seq.begin();
  uint64_t a = 0, b = 0;
  REQUIRE(seq.next(&a));
  REQUIRE(seq.next(&b));
  seq.give_back(a);  // not the last one handed out: ignored
  uint64_t c = 0;
  REQUIRE(seq.next(&c));
  CHECK(c == b + 1);
  seq.give_back(c);
  uint64_t d = 0;
  REQUIRE(seq.next(&d));
  CHECK(d == c);
  CHECK(seq.writes() == 1);
}

TEST_CASE("sequence counter: a failed reservation hands out nothing") {
  MemStore store;
  store.fail_after = 1;
  SeqCounter c(store, 4);
  c.begin();
  uint64_t s = 0;
  for (int i = 0; i < 4; i++) REQUIRE(c.next(&s));
  CHECK_FALSE(c.next(&s));  // the second block cannot be reserved
  SeqCounter after(store, 4);
  after.begin();
  REQUIRE_FALSE(after.next(&s));  // still failing
  store.fail_after = -1;
  REQUIRE(after.next(&s));
  CHECK(s == 4);
}

TEST_CASE("commands: decrypted, replay-checked, persisted before use") {
  Keys k = make_keys("2b7e151628aed2a6abf7158809cf4f3c", Auth::HmacSha256);
  // The command vector was made by aes-encrypt's library for device 5C:CF:7F:AA:BB:CC.
  json cmd_vector;
  const json all = vectors();
  for (const auto &v : all["wire"]) if (std::string(v["plaintext"]).find("\"cmd\"") != std::string::npos) cmd_vector = v;
  REQUIRE_FALSE(cmd_vector.is_null());
  char iv_b64[25];
  size_t n = 0;
  const auto iv = hex(cmd_vector["iv"]);
  REQUIRE(base64_encode(iv.data(), 16, iv_b64, sizeof(iv_b64), &n));
  const std::string body = std::string("{\"iv\":\"") + iv_b64 + "\",\"data\":\"" + std::string(cmd_vector["data"]) + "\",\"mac\":\"" + std::string(cmd_vector["mac"]) + "\"}";
  MemStore store;
  DownlinkGuard guard(store);
  guard.begin();
  uint8_t work[96];
  Command cmd;
  REQUIRE(guard.accept(k, "5C:CF:7F:AA:BB:CC", body.data(), body.size(), work, sizeof(work), &cmd) == CommandStatus::Ok);
  CHECK(cmd.seqn == 42);
  bool led = false;
  REQUIRE(json_bool(cmd.cmd.ptr, cmd.cmd.len, "led", &led));
  CHECK(led);
  CHECK(store.value == 42);
  // The same command again, and after a reboot: a replay.
  CHECK(guard.accept(k, "5C:CF:7F:AA:BB:CC", body.data(), body.size(), work, sizeof(work), &cmd) == CommandStatus::Replay);
  DownlinkGuard rebooted(store);
  rebooted.begin();
  CHECK(rebooted.last() == 42);
  CHECK(rebooted.accept(k, "5C:CF:7F:AA:BB:CC", body.data(), body.size(), work, sizeof(work), &cmd) == CommandStatus::Replay);
  // For another device id the MAC does not verify.
  CHECK(rebooted.accept(k, "5C:CF:7F:00:00:00", body.data(), body.size(), work, sizeof(work), &cmd) == CommandStatus::Rejected);
  // An older number from a fresh, valid command is a replay too.
  const std::string old_cmd = seal_text(k, MsgType::Command, "5C:CF:7F:AA:BB:CC", "{\"cmd\":{\"interval\":5},\"SEQN\":41}");
  REQUIRE_FALSE(old_cmd.empty());
  CHECK(rebooted.accept(k, "5C:CF:7F:AA:BB:CC", old_cmd.data(), old_cmd.size(), work, sizeof(work), &cmd) == CommandStatus::Replay);
  // Not persisted, not accepted.
  const std::string next_cmd = seal_text(k, MsgType::Command, "5C:CF:7F:AA:BB:CC", "{\"cmd\":{\"interval\":5},\"SEQN\":43}");
  REQUIRE_FALSE(next_cmd.empty());
  store.fail_after = store.saves;
  CHECK(rebooted.accept(k, "5C:CF:7F:AA:BB:CC", next_cmd.data(), next_cmd.size(), work, sizeof(work), &cmd) == CommandStatus::StoreFailed);
  CHECK(rebooted.last() == 42);
  store.fail_after = -1;
  REQUIRE(rebooted.accept(k, "5C:CF:7F:AA:BB:CC", next_cmd.data(), next_cmd.size(), work, sizeof(work), &cmd) == CommandStatus::Ok);
  uint64_t interval = 0;
  REQUIRE(json_uint(cmd.cmd.ptr, cmd.cmd.len, "interval", &interval));
  CHECK(interval == 5);
  // An uplink (here a reading) reflected back as a command does not verify.
  const std::string reflected = seal_text(k, MsgType::Reading, "5C:CF:7F:AA:BB:CC", "{\"cmd\":{\"interval\":1},\"SEQN\":99}");
  REQUIRE_FALSE(reflected.empty());
  CHECK(rebooted.accept(k, "5C:CF:7F:AA:BB:CC", reflected.data(), reflected.size(), work, sizeof(work), &cmd) == CommandStatus::Rejected);
}

TEST_CASE("downlink: a rekey command is returned, not accepted, until its key is stored (commit)") {
  Keys k = make_keys("000102030405060708090a0b0c0d0e0f", Auth::HmacSha256);
  MemStore store;
  DownlinkGuard guard(store);
  guard.begin();
  const std::string sealed = seal_text(k, MsgType::Command, "d1", "{\"rekey\":{\"kv\":1,\"pub\":\"DE9EDB7D7B7DC1B4D35B61C2ECE435373F8343C85B78674DADFC7E146F882B4F\"},\"SEQN\":7}");
  REQUIRE_FALSE(sealed.empty());
  const size_t n = sealed.size();
  uint8_t work[256];
  Command cmd;
  REQUIRE(guard.accept(k, "d1", sealed.data(), n, work, sizeof(work), &cmd) == CommandStatus::Rekey);
  CHECK(cmd.seqn == 7);
  CHECK(cmd.rekey_kv == 1);
  CHECK(std::vector<uint8_t>(cmd.rekey_pub, cmd.rekey_pub + 32) == hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
  // Not accepted yet: offered again (after a reboot before the key was stored) it is a rekey again.
  CHECK(guard.last() == 0);
  CHECK(store.saves == 0);
  REQUIRE(guard.accept(k, "d1", sealed.data(), n, work, sizeof(work), &cmd) == CommandStatus::Rekey);
  REQUIRE(guard.commit(7));
  CHECK(guard.last() == 7);
  CHECK(store.value == 7);
  CHECK(guard.accept(k, "d1", sealed.data(), n, work, sizeof(work), &cmd) == CommandStatus::Replay);
  // A malformed rekey is a bad command: a bad hex digit, a short key, the old form with the key itself.
  for (const char *rekey : {"{\"kv\":2,\"pub\":\"zz9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f\"}",
                            "{\"kv\":2,\"pub\":\"de9edb7d7b7dc1b4d35b61c2ece43537\"}", "{\"kv\":2,\"key\":\"00112233445566778899AABBCCDDEEFF\"}"}) {
    const std::string bad = seal_text(k, MsgType::Command, "d1", std::string("{\"rekey\":") + rekey + ",\"SEQN\":8}");
    REQUIRE_FALSE(bad.empty());
    CHECK_MESSAGE(guard.accept(k, "d1", bad.data(), bad.size(), work, sizeof(work), &cmd) == CommandStatus::BadCommand, rekey);
  }
}

TEST_CASE("wire: kv and ack are written as the nodes read them") {
  Keys k = make_keys("000102030405060708090a0b0c0d0e0f", Auth::HmacSha256);
  k.kv = 4294967295LL;
  const char *pt = "{}";
  uint8_t work[32];
  char body[256];
  size_t n = 0;
  REQUIRE(seal(k, MsgType::Poll, "d", reinterpret_cast<const uint8_t *>(pt), 2, counting_random, work, sizeof(work), body, sizeof(body), &n));
  CHECK(n == body_len(2, k));
  CHECK(json::parse(std::string(body, n))["kv"] == 4294967295LL);
  char reading[96];
  REQUIRE(build_reading_ack("{\"a0\":1}", 5, 3, reading, sizeof(reading), &n));
  CHECK(std::string(reading, n) == "{\"data\":{\"a0\":1},\"SEQN\":5,\"ack\":3}");
  CHECK_FALSE(build_reading_ack("{\"a0\":1}", 5, 3, reading, n, &n));
}

TEST_CASE("json: members, nesting, escapes and malformed input") {
  const char *j = " { \"a\" : [1, {\"x\": \"}\"}], \"s\":\"v\\\"w\", \"n\": 12 , \"b\":false, \"o\":{\"k\":1} } ";
  uint64_t n = 0;
  CHECK(json_uint(j, strlen(j), "n", &n));
  CHECK(n == 12);
  bool b = true;
  CHECK(json_bool(j, strlen(j), "b", &b));
  CHECK_FALSE(b);
  Span s;
  CHECK_FALSE(json_string(j, strlen(j), "s", &s));  // has an escape
  CHECK(json_member(j, strlen(j), "o", &s));
  CHECK(std::string(s.ptr, s.len) == "{\"k\":1}");
  CHECK_FALSE(json_member(j, strlen(j), "missing", &s));
  CHECK_FALSE(json_uint("{\"n\":-1}", 8, "n", &n));
  CHECK_FALSE(json_uint("{\"n\":9007199254740992}", 22, "n", &n));
  const char *arr = "[{\"iv\":\"a\"}, 2 ,{\"x\":[1,2]}]";
  CHECK(json_array_item(arr, strlen(arr), 0, &s));
  CHECK(std::string(s.ptr, s.len) == "{\"iv\":\"a\"}");
  CHECK(json_array_item(arr, strlen(arr), 2, &s));
  CHECK(std::string(s.ptr, s.len) == "{\"x\":[1,2]}");
  CHECK_FALSE(json_array_item(arr, strlen(arr), 3, &s));
  CHECK_FALSE(json_array_item("[]", 2, 0, &s));
  CHECK_FALSE(json_array_item("{}", 2, 0, &s));
  std::string deep = "{\"a\":" + std::string(20, '[') + std::string(20, ']') + ",\"n\":1}";
  CHECK_FALSE(json_uint(deep.data(), deep.size(), "n", &n));  // nesting over kMaxDepth is refused
  for (const char *bad : {"", "{", "{\"n\"", "{\"n\":", "{\"n\":1", "[\"n\",1]", "{\"n\" 1}", "{\"a\":\"\x01\",\"n\":1}"}) CHECK_FALSE(json_uint(bad, strlen(bad), "n", &n));
}

int main(int argc, char **argv) {
  doctest::Context context;
#ifdef PIO_UNIT_TESTING
  // PlatformIO reads the successful cases from the output and judges failures itself.
  context.setOption("success", true);
  context.setOption("no-exitcode", true);
#endif
  context.applyCommandLine(argc, argv);
  return context.run();
}

// --- persistent storage: the flash journal, RTC memory --------------------------------------------------------

TEST_CASE("crc32: the standard check value") {
  const char *s = "123456789";
  CHECK(crc32(reinterpret_cast<const uint8_t *>(s), 9) == 0xCBF43926u);
  CHECK(crc32(reinterpret_cast<const uint8_t *>(s) + 4, 5, crc32(reinterpret_cast<const uint8_t *>(s), 4)) == 0xCBF43926u);
}

static uint64_t counter_of(Journal &j, JournalTag tag = JournalTag::Uplink) {
  uint64_t v = 0;
  JournalCounter c(j, tag);
  return c.load(&v) ? v : UINT64_MAX;
}

TEST_CASE("journal: erased, zeroed and foreign flash told apart; values survive a reboot; the last one wins") {
  MemFlash erased;
  Journal j(erased);
  CHECK(j.mount() == SlotState::Erased);
  MemFlash zeroed(4, 0x00);
  CHECK(Journal(zeroed).mount() == SlotState::Zeroed);
  MemFlash foreign(4, 0x5A);
  CHECK(Journal(foreign).mount() == SlotState::Corrupt);
  CHECK(std::string(slot_state_name(SlotState::Erased)) == "erased");
  JournalCounter up(j, JournalTag::Uplink);
  JournalCounter ack(j, JournalTag::Ack);
  uint64_t v = 0;
  CHECK_FALSE(up.load(&v));
  REQUIRE(up.save(32));
  REQUIRE(ack.save(7));
  REQUIRE(up.save(64));
  CHECK(erased.erases == 1);  // the first sector, once
  // Writing the value it already holds writes nothing.
  const int writes = erased.writes;
  REQUIRE(ack.save(7));
  CHECK(erased.writes == writes);
  Journal again(erased);
  REQUIRE(again.mount() == SlotState::Ok);
  CHECK_FALSE(again.damaged());
  CHECK(counter_of(again) == 64);
  CHECK(counter_of(again, JournalTag::Ack) == 7);
  // A foreign sector's header (another magic) next to ours changes nothing.
  erased.bytes[2 * Flash::kSectorSize] = 0x12;
  Journal third(erased);
  REQUIRE(third.mount() == SlotState::Ok);
  CHECK(counter_of(third) == 64);
}

TEST_CASE("journal: a flipped bit in any record byte is caught; the counter then skips a block ahead, never back") {
  MemFlash base;
  {
    Journal j(base);
    j.mount();
    JournalCounter up(j, JournalTag::Uplink);
    SeqCounter seq(up, 32);
    seq.begin();
    uint64_t n = 0;
    for (int i = 0; i < 40; i++) REQUIRE(seq.next(&n));  // bounds 32, then 64
    CHECK(n == 39);
  }
  // The newest record (bound 64) is the second one after the 16-byte header.
  const size_t rec = Journal::kHeader + Journal::record_size(8);
  for (size_t byte = 0; byte < Journal::record_size(8); byte++) {
    for (int bit = 0; bit < 8; bit++) {
      MemFlash f = base;
      f.bytes[rec + byte] ^= uint8_t(1u << bit);
      Journal j(f);
      REQUIRE(j.mount() == SlotState::Ok);
      CHECK(j.damaged());
      JournalCounter up(j, JournalTag::Uplink);
      SeqCounter seq(up, 32);
      seq.begin();
      uint64_t n = 0;
      REQUIRE(seq.next(&n));
      CHECK(n == 64);  // 32 (the record before) + one block: past every number used (39)
      // The skip went to a fresh sector: the next boot is clean and goes on from there (64 reserved 96).
      Journal k(f);
      REQUIRE(k.mount() == SlotState::Ok);
      CHECK_FALSE(k.damaged());
      CHECK(counter_of(k) == 96);
    }
  }
}

TEST_CASE("journal: a power cut in every write and erase of a long history loses nothing committed (torn writes)") {
  // 1,100 values over two counters and a key: the journal turns over all 4 sectors.
  auto history = [](Journal &j, int *committed_up, long limit) {
    JournalCounter up(j, JournalTag::Uplink);
    JournalCounter ack(j, JournalTag::Ack);
    KeyRecord key(j);
    uint8_t k[16] = {}, pub[32] = {};
    for (int i = 1; i <= 1100 && limit != 0; i++) {
      bool ok = true;
      if (i % 97 == 0) {
        k[0] = uint8_t(i);
        ok = key.save(uint32_t(i), k, uint64_t(i), pub);
      } else if (i % 10 == 0) {
        ok = ack.save(uint64_t(i));
      } else {
        ok = up.save(uint64_t(i));
        if (ok) *committed_up = i;
      }
      if (!ok) return false;
    }
    return true;
  };
  MemFlash clean;
  Journal cj(clean);
  cj.mount();
  int last = 0;
  REQUIRE(history(cj, &last, -1));
  CHECK(clean.erases >= 5);  // every sector, and the first one again
  CHECK(clean.erases <= 6);
  const long ops = clean.attempts;
  int cuts = 0;
  for (long at = 0; at < ops; at += 1) {
    for (long part : {0L, 5L, 15L}) {
      MemFlash f;
      f.cut_at = at;
      f.cut_bytes = part;
      Journal j(f);
      j.mount();
      int committed = 0;
      REQUIRE_FALSE(history(j, &committed, -1));
      f.reboot();
      Journal after(f);
      CAPTURE(at);
      CAPTURE(part);
      const SlotState state = after.mount();
      const uint64_t v = counter_of(after);
      if (committed == 0) {
        // Cut before the first value was on flash: nothing, or that first value.
        CHECK((v == UINT64_MAX || v <= 10));
      } else {
        REQUIRE(state == SlotState::Ok);
        // The last committed value, or the one being written when the power went; never older.
        CHECK(v >= uint64_t(committed));
        CHECK(v <= uint64_t(committed) + 10);
      }
      cuts++;
    }
  }
  CHECK(cuts == ops * 3);
}

TEST_CASE("journal: erases per day and the flash's life at 1 s, 30 s and 15 min (the budget in docs/energy.md)") {
  struct Case {
    uint32_t interval;
    double max_erases_per_day;
  };
  // Two uplinks a cycle (a reading and a poll, hmac), one reboot a day, one command a day.
  for (Case c : {Case{1, 0.2}, Case{30, 0.12}, Case{900, 0.05}}) {
    MemFlash f;
    Journal j(f);
    j.mount();
    JournalCounter up(j, JournalTag::Uplink);
    JournalCounter ack(j, JournalTag::Ack);
    const int days = 30;
    uint64_t used = 0;
    for (int d = 0; d < days; d++) {
      Journal boot(f);  // a reboot a day: the counter resumes at its bound, one record more
      boot.mount();
      JournalCounter bu(boot, JournalTag::Uplink);
      SeqCounter seq(bu, StorageLayout::seq_block(c.interval));
      seq.begin();
      uint64_t n = 0;
      for (uint64_t i = 0; i < 2ull * 86400 / c.interval; i++) REQUIRE(seq.next(&n));
      REQUIRE(n >= used);
      used = n + 1;
      JournalCounter ba(boot, JournalTag::Ack);
      REQUIRE(ba.save(uint64_t(d + 1)));
    }
    // In the long run one erase per sector-full of records (255), whatever the month's rotations happened to be.
    const double records_per_day = double(f.writes) / days;
    const double per_day = records_per_day / double(Journal::kCounterRecordsPerSector);
    const int worst = *std::max_element(f.sector_erases.begin(), f.sector_erases.end());
    // Each sector is erased in turn: a part rated for N cycles lasts N x sectors / erases per day.
    const double years10k = per_day > 0 ? 10000.0 * double(f.sectors()) / per_day / 365 : 1e9;
    MESSAGE("interval " << c.interval << " s: block " << StorageLayout::seq_block(c.interval) << ", " << records_per_day << " records a day, "
                        << per_day << " erases a day (most worn sector "
                        << worst << " in " << days << " days), " << years10k << " years on a 10,000-cycle part, " << years10k * 10 << " on 100,000");
    CHECK(per_day <= c.max_erases_per_day);
    CHECK(years10k >= 10);
  }
}

TEST_CASE("journal: a failed write hands out no SEQN and leaves the value; the next one goes to a fresh sector") {
  MemFlash f;
  Journal j(f);
  j.mount();
  JournalCounter up(j, JournalTag::Uplink);
  SeqCounter seq(up, 32);
  seq.begin();
  uint64_t n = 0;
  REQUIRE(seq.next(&n));
  CHECK(n == 0);
  for (int i = 0; i < 31; i++) REQUIRE(seq.next(&n));
  f.fail_writes = true;
  CHECK_FALSE(seq.next(&n));
  CHECK(counter_of(j) == 32);
  f.fail_writes = false;
  REQUIRE(seq.next(&n));
  CHECK(n == 32);
  Journal again(f);
  REQUIRE(again.mount() == SlotState::Ok);
  CHECK(counter_of(again) == 64);
}

/// The device's counters as the device lays them out, begun as at boot.
struct BootCounters {
  Journal journal;
  JournalCounter up;
  JournalCounter down;
  SeqCounter seq;
  DownlinkGuard guard;
  explicit BootCounters(Flash &flash) : journal(flash), up(journal, JournalTag::Uplink), down(journal, JournalTag::Ack), seq(up, 32), guard(down) {
    journal.mount();
    seq.begin();
    guard.begin();
  }
};

TEST_CASE("storage on an erased module: the uplink reservation does not make every command a replay (regression)") {
  // An old layout shared one magic between the counters: the first uplink reservation wrote it, and the downlink
  // counter then read as 0xFF..FF, so after a reboot every command was refused as a replay.
  Keys k = make_keys("2b7e151628aed2a6abf7158809cf4f3c", Auth::HmacSha256);
  MemFlash flash;
  {
    BootCounters first(flash);
    uint64_t n = 0;
    REQUIRE(first.seq.next(&n));
    CHECK(n == 0);
  }
  flash.reboot();
  BootCounters second(flash);
  CHECK(second.guard.last() == 0);
  uint64_t n = 0;
  REQUIRE(second.seq.next(&n));
  CHECK(n == 32);  // resumes at the reserved bound: never backwards
  const std::string body = seal_text(k, MsgType::Command, "dev", "{\"cmd\":{\"led\":true},\"SEQN\":1}");
  REQUIRE_FALSE(body.empty());
  uint8_t work[96];
  Command cmd;
  CHECK(second.guard.accept(k, "dev", body.data(), body.size(), work, sizeof(work), &cmd) == CommandStatus::Ok);
  CHECK(cmd.seqn == 1);
  BootCounters third(flash);
  CHECK(third.guard.last() == 1);
}

TEST_CASE("key record: a rekeyed key, its command SEQN and the public key survive a reboot; a damaged one is not used") {
  MemFlash flash;
  Journal j(flash);
  j.mount();
  KeyRecord slot(j);
  uint32_t version = 0;
  uint8_t key[16] = {};
  uint8_t pub[32] = {};
  uint64_t seqn = 0;
  CHECK_FALSE(slot.load(&version, key, &seqn, pub));
  uint8_t fresh[16], mine[32];
  for (int i = 0; i < 16; i++) fresh[i] = uint8_t(0xA0 + i);
  for (int i = 0; i < 32; i++) mine[i] = uint8_t(0x40 + i);
  REQUIRE(slot.save(7, fresh, 0x100000005ull, mine));
  Journal after(flash);
  REQUIRE(after.mount() == SlotState::Ok);
  KeyRecord loaded(after);
  REQUIRE(loaded.load(&version, key, &seqn, pub));
  CHECK(version == 7);
  CHECK(seqn == 0x100000005ull);
  CHECK(std::vector<uint8_t>(key, key + 16) == std::vector<uint8_t>(fresh, fresh + 16));
  CHECK(std::vector<uint8_t>(pub, pub + 32) == std::vector<uint8_t>(mine, mine + 32));
  flash.bytes[Journal::kHeader + 4 + 4 + 3] ^= 1;  // one bit of the key (after the record's head and the version)
  Journal damaged(flash);
  REQUIRE(damaged.mount() == SlotState::Ok);
  CHECK(damaged.damaged());
  CHECK_FALSE(KeyRecord(damaged).load(&version, key, &seqn, pub));
}

TEST_CASE("RTC memory: the wake state survives deep sleep, not power loss; a cleared or damaged one is refused") {
  MemRtc rtc;
  WakeState w{};
  CHECK_FALSE(WakeState::load(rtc, &w));
  w.next_seqn = 40;
  w.bound = 64;
  w.ack = 3;
  w.cfgsn = 9;
  w.interval_s = 900;
  w.wakes = 12;
  w.registered = 1;
  w.network[0] = 0xAB;
  REQUIRE(w.save(rtc));
  WakeState got{};
  REQUIRE(WakeState::load(rtc, &got));
  CHECK(got.next_seqn == 40);
  CHECK(got.bound == 64);
  CHECK(got.ack == 3);
  CHECK(got.cfgsn == 9);
  CHECK(got.interval_s == 900);
  CHECK(got.wakes == 12);
  CHECK(got.registered == 1);
  CHECK(got.network[0] == 0xAB);
  for (size_t byte = 0; byte < 80; byte++) {
    MemRtc f = rtc;
    f.mem[byte] ^= 0x20;
    CHECK_FALSE(WakeState::load(f, &got));
  }
  REQUIRE(WakeState::clear(rtc));
  CHECK_FALSE(WakeState::load(rtc, &got));
  REQUIRE(w.save(rtc));
  rtc.power_loss(7);
  CHECK_FALSE(WakeState::load(rtc, &got));
}

// --- HTTP answers whatever their framing (HttpBody, as src/main.cpp reads them) -----------------------------

static int read_body(HttpBody::Framing f, size_t length, const std::string &wire, size_t step, char *out, size_t size, size_t *len) {
  HttpBody body(f, length, out, size);
  for (size_t at = 0; at < wire.size() && body.feed(wire.data() + at, std::min(step, wire.size() - at)); at += step) {
  }
  return body.result(len);
}

TEST_CASE("HTTP body: Content-Length, chunked (extensions, trailers) and close-delimited, in pieces of any size") {
  const std::string text = "{\"re\":7,\"cfgsn\":1,\"data\":{},\"commands\":[],\"more\":false}";
  const std::string chunked = "5\r\n{\"re\"\r\n1a;name=value\r\n" + text.substr(5, 26) + "\r\n" +
                              [&] { char h[8]; snprintf(h, sizeof(h), "%zx", text.size() - 31); return std::string(h); }() + "\r\n" + text.substr(31) +
                              "\r\n0\r\nX-Checksum: 1\r\n\r\nHTTP/1.1 200 OK";  // (what follows the body is not read)
  for (size_t step = 1; step <= 17; step++) {
    CAPTURE(step);
    char out[256];
    size_t len = 0;
    REQUIRE(read_body(HttpBody::Framing::Length, text.size(), text + "garbage", step, out, sizeof(out), &len) == 0);
    CHECK(std::string(out, len) == text);
    REQUIRE(read_body(HttpBody::Framing::Chunked, 0, chunked, step, out, sizeof(out), &len) == 0);
    CHECK(std::string(out, len) == text);
    CHECK(out[len] == '\0');
    REQUIRE(read_body(HttpBody::Framing::Close, 0, text, step, out, sizeof(out), &len) == 0);
    CHECK(std::string(out, len) == text);
  }
  char out[256];
  size_t len = 0;
  // Empty bodies.
  CHECK(read_body(HttpBody::Framing::Length, 0, "", 1, out, sizeof(out), &len) == 0);
  CHECK(read_body(HttpBody::Framing::Chunked, 0, "0\r\n\r\n", 1, out, sizeof(out), &len) == 0);
  CHECK(len == 0);
}

TEST_CASE("HTTP body: larger than the buffer is refused whole, cut short or malformed is refused as truncated") {
  const std::string big(300, 'x');
  char out[100];
  size_t len = 7;
  CHECK(read_body(HttpBody::Framing::Length, big.size(), big, 64, out, sizeof(out), &len) == kHttpTooLarge);
  CHECK(len == 0);
  CHECK(read_body(HttpBody::Framing::Chunked, 0, "12c\r\n" + big + "\r\n0\r\n\r\n", 64, out, sizeof(out), &len) == kHttpTooLarge);
  CHECK(read_body(HttpBody::Framing::Close, 0, big, 64, out, sizeof(out), &len) == kHttpTooLarge);
  // Exactly the buffer less the NUL fits.
  CHECK(read_body(HttpBody::Framing::Close, 0, big.substr(0, 99), 64, out, sizeof(out), &len) == 0);
  CHECK(len == 99);
  CHECK(read_body(HttpBody::Framing::Length, 50, big.substr(0, 49), 8, out, sizeof(out), &len) == kHttpTruncated);
  for (const std::string &bad : {std::string("5\r\nabc"), std::string("5\r\nabcde\r\n"), std::string("5\r\nabcdeXX0\r\n\r\n"), std::string("zz\r\nabc\r\n"),
                                 std::string("\r\n"), std::string("123456789\r\n"), std::string("5\nabcde\r\n0\r\n\r\n"), std::string("0\r\n\r")}) {
    CAPTURE(bad);
    CHECK(read_body(HttpBody::Framing::Chunked, 0, bad, 3, out, sizeof(out), &len) == kHttpTruncated);
    CHECK(len == 0);
  }
}

/// Hands out the bytes of one vector's device secret, as the hardware RNG would have.
static std::vector<uint8_t> g_scripted;
static void scripted_random(uint8_t *out, size_t n) {
  REQUIRE(n <= g_scripted.size());
  memcpy(out, g_scripted.data(), n);
}

TEST_CASE("rekey: X25519 with BearSSL's m15 and K(v+1) as the shared vectors (node:crypto, RFC 7748) say") {
  const json v = vectors();
  REQUIRE(v["rekey"].size() >= 2);
  // How this BearSSL reads a multiplier: RFC 7748's first private key gives its public key as-is (little-endian, later
  // BearSSL, Debian's) or reversed (big-endian, BearSSL 0.6 in the ESP8266 core). The vectors hold RFC 7748 keys.
  const std::vector<uint8_t> alice = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  uint8_t probe[32];
  br_ec_c25519_m15.mulgen(probe, alice.data(), 32, BR_EC_curve25519);
  const bool little_endian = std::vector<uint8_t>(probe, probe + 32) == hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  MESSAGE("this BearSSL reads X25519 multipliers " << (little_endian ? "little-endian (RFC 7748)" : "big-endian (BearSSL 0.6)"));
  for (const auto &c : v["rekey"]) {
    const std::string id = c["deviceid"];
    CAPTURE(id);
    Keys current;
    REQUIRE(keys_from_hex(&current, std::string(c["old_key"]).c_str(), Auth::HmacSha256));
    g_scripted = hex(c["device_secret"]);
    if (!little_endian) std::reverse(g_scripted.begin(), g_scripted.end());
    const std::vector<uint8_t> server = hex(c["server_pub"]);
    uint8_t key[16], pub[32];
    REQUIRE(rekey_derive(current, id.c_str(), uint32_t(uint64_t(c["kv"])), server.data(), scripted_random, key, pub));
    CHECK(std::vector<uint8_t>(pub, pub + 32) == hex(c["device_pub"]));
    CHECK(std::vector<uint8_t>(key, key + 16) == hex(c["new_key"]));
  }
  // A small-order server key (the all-zero secret) and an over-long id are refused, writing nothing.
  Keys current;
  REQUIRE(keys_from_hex(&current, "000102030405060708090a0b0c0d0e0f", Auth::HmacSha256));
  g_scripted = std::vector<uint8_t>(32, 0x11);
  const uint8_t zero[32] = {};
  uint8_t key[16] = {}, pub[32] = {};
  CHECK_FALSE(rekey_derive(current, "d1", 1, zero, scripted_random, key, pub));
  CHECK(std::vector<uint8_t>(key, key + 16) == std::vector<uint8_t>(16, 0));
  CHECK_FALSE(rekey_derive(current, std::string(65, 'x').c_str(), 1, hex(v["rekey"][0]["server_pub"]).data(), scripted_random, key, pub));
}

TEST_CASE("wire: epk is sent after a rekey and counted in body_len") {
  Keys k = make_keys("000102030405060708090a0b0c0d0e0f", Auth::HmacSha256);
  k.kv = 3;
  for (int i = 0; i < 32; i++) k.epk[i] = uint8_t(i);
  const char *pt = "{}";
  uint8_t work[32];
  char body[256];
  size_t n = 0;
  REQUIRE(seal(k, MsgType::Poll, "d", reinterpret_cast<const uint8_t *>(pt), 2, counting_random, work, sizeof(work), body, sizeof(body), &n));
  CHECK(std::string(body).find("epk") == std::string::npos);
  CHECK(n == body_len(2, k));
  k.send_epk = true;
  REQUIRE(seal(k, MsgType::Poll, "d", reinterpret_cast<const uint8_t *>(pt), 2, counting_random, work, sizeof(work), body, sizeof(body), &n));
  CHECK(n == body_len(2, k));
  CHECK(std::string(body).find(",\"kv\":3,\"epk\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}") != std::string::npos);
}

// --- an owner who makes mistakes -------------------------------------------------------------------------------

TEST_CASE("backend URL: trailing slashes stripped; no scheme, https, no host, a bad port or too long are refused") {
  char out[40];
  CHECK(normalize_backend_url("http://192.168.1.10:1880", out, sizeof(out)) == UrlStatus::Ok);
  CHECK(std::string(out) == "http://192.168.1.10:1880");
  CHECK(normalize_backend_url("http://192.168.1.10:1880///", out, sizeof(out)) == UrlStatus::Ok);
  CHECK(std::string(out) == "http://192.168.1.10:1880");
  CHECK(normalize_backend_url("http://iot.lan/nodered/", out, sizeof(out)) == UrlStatus::Ok);
  CHECK(std::string(out) == "http://iot.lan/nodered");
  CHECK(normalize_backend_url("http://host", out, sizeof(out)) == UrlStatus::Ok);
  CHECK(normalize_backend_url("", out, sizeof(out)) == UrlStatus::Empty);
  CHECK(normalize_backend_url(nullptr, out, sizeof(out)) == UrlStatus::Empty);
  CHECK(normalize_backend_url("192.168.1.10:1880", out, sizeof(out)) == UrlStatus::NoScheme);
  CHECK(std::string(out).empty());
  CHECK(normalize_backend_url("HTTP//host", out, sizeof(out)) == UrlStatus::NoScheme);
  CHECK(normalize_backend_url("https://host:1880", out, sizeof(out)) == UrlStatus::Https);
  CHECK(normalize_backend_url("http://", out, sizeof(out)) == UrlStatus::NoHost);
  CHECK(normalize_backend_url("http:///", out, sizeof(out)) == UrlStatus::NoHost);
  CHECK(normalize_backend_url("http://:1880", out, sizeof(out)) == UrlStatus::NoHost);
  for (const char *bad : {"http://h:", "http://h:0", "http://h:65536", "http://h:99999999999", "http://h:18x0", "http://h:1880x/"}) {
    CHECK_MESSAGE(normalize_backend_url(bad, out, sizeof(out)) == UrlStatus::BadPort, bad);
  }
  CHECK(normalize_backend_url("http://h:65535/", out, sizeof(out)) == UrlStatus::Ok);
  CHECK(normalize_backend_url("http://a-rather-long-host-name.example:1880", out, sizeof(out)) == UrlStatus::TooLong);
  char exact[16];
  CHECK(normalize_backend_url("http://h:1880//", exact, 14) == UrlStatus::Ok);  // 13 characters and the NUL
  CHECK(normalize_backend_url("http://h:1880", exact, 13) == UrlStatus::TooLong);
  CHECK(std::string(url_status_text(UrlStatus::NoScheme)).find("http://") != std::string::npos);
}

TEST_CASE("refusal streak: explains once at the threshold; only an accepted uplink starts a new streak") {
  RefusalStreak streak(3);
  CHECK_FALSE(streak.record(400));
  CHECK_FALSE(streak.record(-1));  // a network error neither counts nor resets
  CHECK_FALSE(streak.record(400));
  CHECK(streak.record(400));
  CHECK_FALSE(streak.record(400));  // not again while it goes on
  CHECK(streak.count() == 4);
  CHECK_FALSE(streak.record(200));
  CHECK(streak.count() == 0);
  CHECK_FALSE(streak.record(400));
  CHECK_FALSE(streak.record(400));
  CHECK(streak.record(400));
}
