import {
  DEFAULT_MAX_BYTES,
  MESSAGE_TYPE_NAMES,
  MessageType,
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
import type { Envelope } from '../lib';
import { resolveKey, usableKeyNode } from '../shared/keys';
import type { ResolvedKey } from '../shared/keys';
import { deviceIdFrom, deviceIdOf, oneOf, positiveInt } from '../shared/config';
import type { Msg, Node, NodeDef, RED } from '../shared/red';

export = function register(RED: RED) {
  function AesDecrypt(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const plaintext: PlaintextInMode = oneOf(def.plaintext, PLAINTEXT_IN_MODES, 'auto');
    const output: OutputMode = oneOf(def.output, OUTPUT_MODES, 'auto');
    const maxBytes = positiveInt(def.maxBytes, DEFAULT_MAX_BYTES);
    // What the message must be: bound into the MAC, so another type (or a downlink) does not verify.
    const msgtype: MessageType = oneOf(def.msgtype, MESSAGE_TYPE_NAMES, 'reading');

    /** Opens the message with its key; what was proven goes into msg.e2ee for the replay guard and the registry. */
    const finish = (msg: Msg, envelope: Envelope, resolved: ResolvedKey): Msg => {
      const { key, keyVersion, keywrap } = resolved;
      const raw = decryptEnvelope(key, envelope, deviceIdOf(msg), msgtype);
      msg.payload = formatOutput(unwrapPlaintext(raw, plaintext), output);
      msg.e2ee = {
        type: msgtype,
        authenticated: key.kind === 'bytes' && key.macKey !== undefined,
        ...(keyVersion !== undefined ? { keyver: keyVersion } : {}),
        // The first messages under a rekey's version: the new key, wrapped under the master (never in the clear).
        ...(keywrap !== undefined ? { keywrap } : {}),
      };
      if (keyVersion !== undefined) msg.keyVersion = keyVersion;
      return msg;
    };

    this.on('input', inputFunnel<Msg>(this, (key, params) => RED._(key, params), (msg) => {
      // A missing or broken key is reported before anything about the message.
      usableKeyNode(RED, def.key);
      // Straight from an http in route with :deviceid: that is the device (kept in msg.deviceid for the nodes after).
      if (msg.deviceid === undefined) {
        const param = deviceIdFrom(msg);
        if (typeof param === 'string') msg.deviceid = param;
      }
      const envelope = parseEnvelope(msg.payload, { iv: msg.iv, mac: msg.mac, maxBytes });
      // The key version travels with the message (kv); msg.keyVersion is for bodies without one.
      const kv = envelope.form === 'keyiv' && envelope.kv !== undefined ? envelope.kv : msg.keyVersion;
      const epk = envelope.form === 'keyiv' ? envelope.epk : undefined;
      const resolved = resolveKey(RED, def.key, { deviceid: deviceIdOf(msg), keyVersion: kv, epk });
      return resolved instanceof Promise ? resolved.then((r) => finish(msg, envelope, r)) : finish(msg, envelope, resolved);
    }));
  }
  RED.nodes.registerType('aes-decrypt', AesDecrypt);
};
