import {
  DEFAULT_MAX_BYTES,
  OUTPUT_MODES,
  OutputMode,
  PLAINTEXT_IN_MODES,
  PlaintextInMode,
  decryptEnvelope,
  formatOutput,
  inputFunnel,
  parseEnvelope,
  unwrapPlaintext,
} from '../lib';
import { resolveKey } from '../shared/keys';
import { deviceIdOf, oneOf, positiveInt } from '../shared/config';
import type { Msg, Node, NodeDef, RED } from '../shared/red';

export = function register(RED: RED) {
  function AesDecrypt(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const plaintext: PlaintextInMode = oneOf(def.plaintext, PLAINTEXT_IN_MODES, 'auto');
    const output: OutputMode = oneOf(def.output, OUTPUT_MODES, 'auto');
    const maxBytes = positiveInt(def.maxBytes, DEFAULT_MAX_BYTES);

    this.on('input', inputFunnel<Msg>(this, (key, params) => RED._(key, params), (msg) => {
      const key = resolveKey(RED, def.key, { deviceid: deviceIdOf(msg), keyVersion: msg.keyVersion });
      const envelope = parseEnvelope(msg.payload, { iv: msg.iv, mac: msg.mac, maxBytes });
      const raw = decryptEnvelope(key, envelope, deviceIdOf(msg));
      msg.payload = formatOutput(unwrapPlaintext(raw, plaintext), output);
      return msg;
    }));
  }
  RED.nodes.registerType('aes-decrypt', AesDecrypt);
};
