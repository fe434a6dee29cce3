'use strict';
/**
 * What the HTTP benchmarks share: the readings load (registered devices, and an autocannon request whose every
 * send carries a fresh (device, SEQN) pair, encrypted like the firmware does, devices in turn), autocannon as
 * a promise, the bare route, adding a flow through the admin API, the RSS of a process, and the function node of the
 * peer pipeline (HTTP and MQTT).
 */
const fs = require('node:fs');
const autocannon = require('autocannon');
const lib = require('../../dist/nodes/lib');
const { requestJson } = require('../../dist/sim/device');

/** autocannon, resolving with its result. */
const cannon = (opts) => new Promise((resolve, reject) => autocannon(opts, (err, r) => (err ? reject(err) : resolve(r))));

/** Resident memory of a process, in MB. */
const rssMb = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

/**
 * The peer pipeline's function node, as users build it today (the seed's server): decrypt with crypto-js (from the
 * global context), SEQN checked in flow context, then msg.params for a node-red-node-sqlite INSERT. idFrom: the
 * expression that gives the device id; refuse and accept: the statements that end a refused and an accepted message.
 */
function peerFunction(keyHex, { idFrom, refuse, accept }) {
  return `const CryptoJS = global.get('CryptoJS');
const key = CryptoJS.enc.Hex.parse('${keyHex}');
let reading;
try {
  const bytes = CryptoJS.AES.decrypt({ ciphertext: CryptoJS.enc.Base64.parse(msg.payload.data) }, key, { iv: CryptoJS.enc.Base64.parse(msg.payload.iv) });
  reading = JSON.parse(bytes.toString(CryptoJS.enc.Utf8));
} catch (e) {
  ${refuse}
}
const id = ${idFrom};
const last = context.get('seq:' + id);
if (!(Number.isInteger(reading.SEQN) && (last === undefined || reading.SEQN > last))) {
  ${refuse}
}
context.set('seq:' + id, reading.SEQN);
msg.params = { $deviceid: id, $seqn: reading.SEQN, $payload: JSON.stringify(reading) };
${accept}`;
}

/** The baseline: http in -> http response on POST /bench/bare. */
const BARE_FLOW = [
  { id: 'bench-bare-in', type: 'http in', url: '/bench/bare', method: 'post', upload: false, wires: [['bench-bare-out']] },
  { id: 'bench-bare-out', type: 'http response', statusCode: '200', headers: {}, wires: [] },
];

/** Logs in to the backend's editor as admin (password: the admin token) and adds a flow tab with these nodes. */
async function addFlow(url, adminToken, label, nodes) {
  const login = await requestJson(`${url}/auth/token`, 'POST', { client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: adminToken });
  const added = await requestJson(`${url}/flow`, 'POST', { label, nodes }, { authorization: `Bearer ${login.body.access_token}` });
  if (added.status !== 200) throw new Error(`adding the flow ${label}: ${added.status} ${JSON.stringify(added.body)}`);
  // The flow's routes exist once it has started.
  await new Promise((r) => setTimeout(r, 500));
}

/**
 * The body of a registration as the firmware sends it: with an authenticating key a sealed registration (uplink SEQN
 * `seqn`), else the seed's plain one. `key`: the device's key material, or a DeviceKeyring.
 */
function registrationBody(key, id, { seqn = 0, ipaddr = '127.0.0.1', ssid = 'bench' } = {}) {
  const material = typeof key.material === 'function' ? key.material(id) : key;
  return material.macKey
    ? lib.encryptToWire(material, Buffer.from(JSON.stringify({ ipaddr, ssid, SEQN: seqn, ack: 0 })), id, { type: 'register', kv: typeof key.material === 'function' ? 0 : undefined })
    : { ipaddr, ssid };
}

/** Registers a device as the firmware does (registrationBody). */
function registerDevice(url, key, id, { agent, ...options } = {}) {
  return requestJson(`${url}/api/devices/${id}`, 'POST', registrationBody(key, id, options), {}, agent);
}

/**
 * @param {{url: string, key: object, devices?: number, prefix?: string, path?: (id: string) => string, register?: boolean}} options
 *   path: the request path for a device (default the shipped route); register: POST /api/devices/:id first.
 */
/**
 * `key`: a device's key material for all of them (a shared key), or a DeviceKeyring (npm start's per-device scope:
 * each device its own key).
 */
async function readingsLoad({ url, key, devices = 100, prefix = 'BE', path = (id) => `/api/devices/${id}/readings`, register = true }) {
  const ids = Array.from({ length: devices }, (_, i) => `5C:CF:7F:${prefix}:${String(Math.floor(i / 100)).padStart(2, '0')}:${String(i % 100).padStart(2, '0')}`);
  if (register) {
    for (const id of ids) {
      // (SEQN 0: the readings go on from 1.)
      const r = await registerDevice(url, key, id);
      if (r.status !== 201 && r.status !== 200) throw new Error(`register ${id}: ${r.status}`);
    }
  }
  const counters = new Map(ids.map((id) => [id, 0]));
  const keyOf = typeof key.material === 'function' ? (id) => key.material(id) : () => key;
  let turn = 0;
  let sent = 0;
  const request = {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    setupRequest: (req) => {
      const id = ids[turn++ % devices];
      const seqn = counters.get(id) + 1;
      counters.set(id, seqn);
      sent++;
      const body = JSON.stringify(lib.encryptToWire(keyOf(id), Buffer.from(JSON.stringify({ data: { a0: seqn % 1024, heap: 30000, uptime: seqn }, SEQN: seqn })), id));
      return { ...req, path: path(id), body };
    },
  };
  return { ids, request, get sent() { return sent; } };
}

module.exports = { readingsLoad, registerDevice, registrationBody, cannon, rssMb, BARE_FLOW, addFlow, peerFunction };
