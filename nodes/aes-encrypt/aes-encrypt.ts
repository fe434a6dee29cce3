import {
  MESSAGE_TYPE_NAMES,
  MessageType,
  PLAINTEXT_OUT_MODES,
  PlaintextOutMode,
  encryptToWire,
  inputFunnel,
  parseFixedIv,
  payloadToBytes,
  withRekeyKey,
  wrapPlaintext,
} from '../lib';
import { resolveKey } from '../shared/keys';
import { deviceIdOf, oneOf } from '../shared/config';
import type { Msg, Node, NodeDef, RED } from '../shared/red';

export = function register(RED: RED) {
  function AesEncrypt(this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const plaintext: PlaintextOutMode = oneOf(def.plaintext, PLAINTEXT_OUT_MODES, 'utf8');
    const msgtype: MessageType = oneOf(def.msgtype, MESSAGE_TYPE_NAMES, 'command');
    const ivSetting = typeof def.iv === 'string' && def.iv !== '' ? def.iv.trim() : 'random';
    let fixedIv: Buffer | undefined;
    let ivError: unknown;
    if (ivSetting !== 'random') {
      try {
        fixedIv = parseFixedIv(ivSetting);
        this.warn(RED._('aes-encrypt.warn.fixed-iv'));
      } catch (err) {
        ivError = err;
      }
    }

    this.on('input', inputFunnel<Msg>(this, (key, params) => RED._(key, params), (msg) => {
      if (ivError) throw ivError;
      const { key, keyVersion, keyring } = resolveKey(RED, def.key, { deviceid: deviceIdOf(msg), keyVersion: msg.keyVersion });
      // A rekey command gets the device's new key here, inside the crypto node, so the key never travels through
      // the flow (nor shows in a debug node).
      const payload = keyring ? withRekeyKey(msg.payload, keyring, deviceIdOf(msg)) : msg.payload;
      const bytes = wrapPlaintext(payloadToBytes(payload), plaintext);
      msg.payload = encryptToWire(key, bytes, deviceIdOf(msg), { type: msgtype, fixedIv, kv: keyVersion });
      return msg;
    }));
  }
  RED.nodes.registerType('aes-encrypt', AesEncrypt);
};
