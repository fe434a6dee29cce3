'use strict';
/**
 * The readings load every HTTP benchmark uses: registered devices, and an autocannon request whose every
 * send carries a fresh (device, SEQN) pair, encrypted like the firmware does (devices in turn).
 */
const lib = require('../../dist/nodes/lib');
const { requestJson } = require('../../dist/sim/device');

/**
 * @param {{url: string, key: object, devices?: number, prefix?: string, path?: (id: string) => string, register?: boolean}} options
 *   path: the request path for a device (default the shipped route); register: POST /api/devices/:id first.
 */
async function readingsLoad({ url, key, devices = 100, prefix = 'BE', path = (id) => `/api/devices/${id}/readings`, register = true }) {
  const ids = Array.from({ length: devices }, (_, i) => `5C:CF:7F:${prefix}:${String(Math.floor(i / 100)).padStart(2, '0')}:${String(i % 100).padStart(2, '0')}`);
  if (register) {
    for (const id of ids) {
      const r = await requestJson(`${url}/api/devices/${id}`, 'POST', { ipaddr: '127.0.0.1', ssid: 'bench' });
      if (r.status !== 201 && r.status !== 200) throw new Error(`register ${id}: ${r.status}`);
    }
  }
  const counters = new Map(ids.map((id) => [id, 0]));
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
      const body = JSON.stringify(lib.encryptToWire(key, Buffer.from(JSON.stringify({ data: { a0: seqn % 1024, heap: 30000, uptime: seqn }, SEQN: seqn })), id));
      return { ...req, path: path(id), body };
    },
  };
  return { ids, request, get sent() { return sent; } };
}

module.exports = { readingsLoad };
