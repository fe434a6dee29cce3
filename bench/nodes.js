#!/usr/bin/env node
/**
 * Benchmark: aes-decrypt and aes-encrypt against the crypto-js based alternatives, all in one Node-RED
 * runtime and one run, interleaved, so the machine's noise hits every contender alike. Reports msgs/s and
 * the median of the per-round ratios.
 *
 *   passphrase mode: aes-decrypt / aes-encrypt vs node-red-contrib-crypto-js `decrypt` / `encrypt`
 *   key/IV mode:     aes-decrypt / aes-encrypt vs a function node running crypto-js the way the seed's
 *                    server (decrypt) and its Node client (encrypt) did
 *
 * Usage: node bench/nodes.js [--messages 20000] [--rounds 7] [--json]
 */
'use strict';
const crypto = require('node:crypto');
const CryptoJS = require('crypto-js');
const { startRuntime, pump, median, fmt, arg, benchMain } = require('./lib/runtime');

const PASSPHRASE = 'bench passphrase';
const KEY = crypto.randomBytes(16);

// The seed's server: parse the key and IV into WordArrays, decrypt the base64 data, turn the result into a
// UTF-8 string and parse the JSON.
const SEED_DECRYPT = `
const CryptoJS = global.get('CryptoJS');
const key = CryptoJS.enc.Hex.parse('${KEY.toString('hex')}');
const iv = CryptoJS.enc.Base64.parse(msg.payload.iv);
const bytes = CryptoJS.AES.decrypt(msg.payload.data, key, { iv: iv, mode: CryptoJS.mode.CBC, padding: CryptoJS.pad.Pkcs7 });
msg.payload = JSON.parse(bytes.toString(CryptoJS.enc.Utf8));
return msg;`;
// The seed's client: a random IV, the JSON text encrypted, {iv, data} in base64.
const SEED_ENCRYPT = `
const CryptoJS = global.get('CryptoJS');
const key = CryptoJS.enc.Hex.parse('${KEY.toString('hex')}');
const iv = CryptoJS.lib.WordArray.random(16);
const enc = CryptoJS.AES.encrypt(JSON.stringify(msg.payload), key, { iv: iv, mode: CryptoJS.mode.CBC, padding: CryptoJS.pad.Pkcs7 });
msg.payload = { iv: CryptoJS.enc.Base64.stringify(iv), data: enc.ciphertext.toString(CryptoJS.enc.Base64) };
return msg;`;

const flow = [
  { id: 'tab', type: 'tab', label: 'bench' },
  { id: 'kPass', type: 'aes-key', format: 'passphrase', auth: 'none' },
  { id: 'kHex', type: 'aes-key', format: 'hex', auth: 'none' },
  { id: 'decPass', type: 'aes-decrypt', key: 'kPass', plaintext: 'utf8', output: 'auto', wires: [['sink']] },
  { id: 'peerDecPass', type: 'decrypt', algorithm: 'AES', key: PASSPHRASE, wires: [['sink']] },
  { id: 'decKeyIv', type: 'aes-decrypt', key: 'kHex', plaintext: 'utf8', output: 'auto', wires: [['sink']] },
  { id: 'peerDecKeyIv', type: 'function', func: SEED_DECRYPT, outputs: 1, noerr: 0, wires: [['sink']] },
  { id: 'encPass', type: 'aes-encrypt', key: 'kPass', wires: [['sink']] },
  { id: 'peerEncPass', type: 'encrypt', algorithm: 'AES', key: PASSPHRASE, wires: [['sink']] },
  { id: 'encKeyIv', type: 'aes-encrypt', key: 'kHex', wires: [['sink']] },
  { id: 'peerEncKeyIv', type: 'function', func: SEED_ENCRYPT, outputs: 1, noerr: 0, wires: [['sink']] },
  { id: 'sink', type: 'debug', active: false, tosidebar: false, console: false, complete: 'false', wires: [] },
];
const credentials = { kPass: { key: PASSPHRASE }, kHex: { key: KEY.toString('hex') } };

const reading = (i) => ({ data: { a0: 500 + (i % 300), heap: 30000 + i, uptime: i * 10 }, SEQN: i });

/** [ours, peer, messages] per comparison. */
function comparisons(messages) {
  const text = Array.from({ length: messages }, (_, i) => JSON.stringify(reading(i)));
  const passCipher = text.map((t) => CryptoJS.AES.encrypt(t, PASSPHRASE).toString());
  const keyIvCipher = text.map((t) => {
    const iv = crypto.randomBytes(16);
    const c = crypto.createCipheriv('aes-128-cbc', KEY, iv);
    return { iv: iv.toString('base64'), data: Buffer.concat([c.update(t), c.final()]).toString('base64') };
  });
  const objects = text.map((t) => JSON.parse(t));
  return {
    'decrypt passphrase': ['decPass', 'peerDecPass', passCipher],
    'decrypt key/IV': ['decKeyIv', 'peerDecKeyIv', keyIvCipher],
    // node-red-contrib-crypto-js encrypts msg.payload as a string.
    'encrypt passphrase': ['encPass', 'peerEncPass', text],
    'encrypt key/IV': ['encKeyIv', 'peerEncKeyIv', objects],
  };
}

async function run({ messages = arg('messages', 20000), rounds = arg('rounds', 7) } = {}) {
  for (const n of flow) if (n.type !== 'tab' && n.type !== 'aes-key') n.z = 'tab';
  const runtime = await startRuntime({ flow, credentials, packages: ['node-red-contrib-crypto-js'], settings: { functionGlobalContext: { CryptoJS } } });
  const send = (id, payloads) => pump(runtime, id, 'sink', payloads.map((payload) => ({ payload: typeof payload === 'object' ? { ...payload } : payload })));
  const cases = comparisons(messages);
  // Warm-up so JIT and caches do not favour whoever runs second.
  for (const [ours, peer, msgs] of Object.values(cases)) {
    await send(ours, msgs.slice(0, 2000));
    await send(peer, msgs.slice(0, 2000));
  }
  const results = {};
  for (const name of Object.keys(cases)) results[name] = { ours: [], peer: [], ratios: [] };
  for (let round = 0; round < rounds; round++) {
    for (const [name, [ours, peer, msgs]] of Object.entries(cases)) {
      // Alternate who goes first each round.
      const a = round % 2 ? await send(peer, msgs) : await send(ours, msgs);
      const b = round % 2 ? await send(ours, msgs) : await send(peer, msgs);
      const [o, p] = round % 2 ? [b, a] : [a, b];
      results[name].ours.push(o);
      results[name].peer.push(p);
      results[name].ratios.push(o / p);
    }
  }
  const version = runtime.RED.version();
  await runtime.stop();
  const summary = {};
  for (const [name, r] of Object.entries(results)) {
    summary[name] = { ours: median(r.ours), peer: median(r.peer), ratio: median(r.ratios), rounds: r.ratios };
  }
  return { nodeRed: version, messages, rounds, results: summary };
}

if (require.main === module) {
  benchMain(run, (r) => {
    console.log(`aes nodes: Node-RED ${r.nodeRed}, Node ${process.version}, ${r.messages} msgs x ${r.rounds} rounds`);
    for (const [name, s] of Object.entries(r.results)) {
      console.log(`  ${name.padEnd(20)} ours ${fmt(s.ours).padStart(9)} msgs/s  peer ${fmt(s.peer).padStart(8)} msgs/s  median ratio ${s.ratio.toFixed(2)}x  rounds ${s.rounds.map((x) => x.toFixed(1)).join(' ')}`);
    }
  });
}

module.exports = { run };
