'use strict';
/** Sealed device messages for tests, as the firmware sends them in hmac-sha256 mode (see README, "Wire format"). */
const lib = require('../../dist/nodes/lib');
const { requestJson } = require('../../dist/sim/device');

/** A plaintext sealed as a message of `type` for device `id` (kv: the per-device key version). */
function sealed(key, id, type, plaintext, kv = 0) {
  return lib.encryptToWire(key, Buffer.from(JSON.stringify(plaintext)), id, { type, kv });
}

/** POST /api/devices/:id with a sealed registration using uplink SEQN `SEQN`. */
function registerSealed(baseUrl, key, id, { SEQN = 0, ipaddr = '192.0.2.1', ssid = 'lab', ...rest } = {}) {
  return requestJson(`${baseUrl}/api/devices/${encodeURIComponent(id)}`, 'POST', sealed(key, id, 'register', { ipaddr, ssid, ...rest, SEQN, ack: 0 }));
}

/** POST /api/devices/:id/poll with a sealed poll using uplink SEQN `SEQN`. */
function pollSealed(baseUrl, key, id, SEQN) {
  return requestJson(`${baseUrl}/api/devices/${encodeURIComponent(id)}/poll`, 'POST', sealed(key, id, 'poll', { SEQN, ack: 0 }));
}

module.exports = { sealed, registerSealed, pollSealed };
