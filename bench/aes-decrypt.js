#!/usr/bin/env node
/**
 * Benchmark: aes-decrypt against the crypto-js based alternatives, all in one
 * Node-RED runtime and one run (node-red-node-test-helper), interleaved, so
 * the machine's noise hits every contender alike. Reports msgs/s and the
 * median of the per-round ratios.
 *
 *   passphrase mode: aes-decrypt vs node-red-contrib-crypto-js `decrypt`
 *   key/IV mode:     aes-decrypt vs a function node running crypto-js the way
 *                    the seed's server did
 *
 * Usage: node bench/aes-decrypt.js [--messages 20000] [--rounds 7]
 */
'use strict';
const crypto = require('node:crypto');
const CryptoJS = require('crypto-js');
const { startRuntime, pump, median, fmt, arg } = require('./lib/runtime');
const MESSAGES = arg('messages', 20000);
const ROUNDS = arg('rounds', 7);


const PASSPHRASE = 'bench passphrase';
const KEY = crypto.randomBytes(16);

// The seed's server: parse the key and IV into WordArrays, decrypt the
// base64 data, turn the result into a UTF-8 string and parse the JSON.
const SEED_FUNCTION = `
const CryptoJS = global.get('CryptoJS');
const key = CryptoJS.enc.Hex.parse('${KEY.toString('hex')}');
const iv = CryptoJS.enc.Base64.parse(msg.payload.iv);
const bytes = CryptoJS.AES.decrypt(msg.payload.data, key, { iv: iv, mode: CryptoJS.mode.CBC, padding: CryptoJS.pad.Pkcs7 });
msg.payload = JSON.parse(bytes.toString(CryptoJS.enc.Utf8));
return msg;`;

const flow = [
  { id: 'tab', type: 'tab', label: 'bench' },
  { id: 'kPass', type: 'aes-key', format: 'passphrase', auth: 'none' },
  { id: 'kHex', type: 'aes-key', format: 'hex', auth: 'none' },
  { id: 'oursPass', type: 'aes-decrypt', key: 'kPass', plaintext: 'utf8', output: 'auto', wires: [['sink']] },
  { id: 'cryptojsNode', type: 'decrypt', algorithm: 'AES', key: PASSPHRASE, wires: [['sink']] },
  { id: 'oursKeyIv', type: 'aes-decrypt', key: 'kHex', plaintext: 'utf8', output: 'auto', wires: [['sink']] },
  { id: 'seedFunction', type: 'function', func: SEED_FUNCTION, outputs: 1, noerr: 0, wires: [['sink']] },
  { id: 'sink', type: 'debug', active: false, tosidebar: false, console: false, complete: 'false', wires: [] },
];
const credentials = { kPass: { key: PASSPHRASE }, kHex: { key: KEY.toString('hex') } };

function reading(i) {
  return JSON.stringify({ data: { a0: 500 + (i % 300), heap: 30000 + i, uptime: i * 10 }, SEQN: i });
}

async function main() {
  for (const n of flow) if (n.type !== 'tab' && n.type !== 'aes-key') n.z = 'tab';
  const runtime = await startRuntime({ flow, credentials, packages: ['node-red-contrib-crypto-js'], settings: { functionGlobalContext: { CryptoJS } } });
  const run = (id, payloads) => pump(runtime, id, 'sink', payloads.map((payload) => ({ payload })));
  const passMsgs = Array.from({ length: MESSAGES }, (_, i) => CryptoJS.AES.encrypt(reading(i), PASSPHRASE).toString());
  const keyIvMsgs = Array.from({ length: MESSAGES }, (_, i) => {
    const iv = crypto.randomBytes(16);
    const c = crypto.createCipheriv('aes-128-cbc', KEY, iv);
    return { iv: iv.toString('base64'), data: Buffer.concat([c.update(reading(i)), c.final()]).toString('base64') };
  });

  // Warm-up so JIT and caches do not favour whoever runs second.
  for (const [id, msgs] of [['oursPass', passMsgs], ['cryptojsNode', passMsgs], ['oursKeyIv', keyIvMsgs], ['seedFunction', keyIvMsgs]]) {
    await run(id, msgs.slice(0, 2000));
  }

  const rows = { oursPass: [], cryptojsNode: [], oursKeyIv: [], seedFunction: [] };
  const passRatios = [];
  const keyIvRatios = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order each round.
    const pairs = round % 2 ? [['cryptojsNode', 'oursPass'], ['seedFunction', 'oursKeyIv']] : [['oursPass', 'cryptojsNode'], ['oursKeyIv', 'seedFunction']];
    for (const [a, b] of pairs) {
      const msgsA = a.includes('Pass') || a === 'cryptojsNode' ? passMsgs : keyIvMsgs;
      rows[a].push(await run(a, msgsA));
      rows[b].push(await run(b, msgsA));
    }
    passRatios.push(rows.oursPass[round] / rows.cryptojsNode[round]);
    keyIvRatios.push(rows.oursKeyIv[round] / rows.seedFunction[round]);
  }
  const version = runtime.RED.version();
  await runtime.stop();

  console.log(`aes-decrypt benchmark: Node-RED ${version}, Node ${process.version}, ${MESSAGES} msgs x ${ROUNDS} rounds`);
  console.log(`  passphrase  aes-decrypt            median ${fmt(median(rows.oursPass))} msgs/s`);
  console.log(`  passphrase  crypto-js decrypt node median ${fmt(median(rows.cryptojsNode))} msgs/s`);
  console.log(`  key/IV      aes-decrypt            median ${fmt(median(rows.oursKeyIv))} msgs/s`);
  console.log(`  key/IV      seed function+crypto-js median ${fmt(median(rows.seedFunction))} msgs/s`);
  console.log(`  ratio passphrase: median ${median(passRatios).toFixed(2)}x (goal >= 6x)  rounds: ${passRatios.map((r) => r.toFixed(2)).join(' ')}`);
  console.log(`  ratio key/IV:     median ${median(keyIvRatios).toFixed(2)}x (goal >= 8x)  rounds: ${keyIvRatios.map((r) => r.toFixed(2)).join(' ')}`);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
