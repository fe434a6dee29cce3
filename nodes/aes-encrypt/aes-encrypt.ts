import {
  MESSAGE_TYPE_NAMES,
  MessageType,
  PLAINTEXT_OUT_MODES,
  PlaintextOutMode,
  encryptToWire,
  inputFunnel,
  parseFixedIv,
  payloadToBytes,
  isRekeyCommand,
  withRekeyOffer,
  wrapPlaintext,
} from '../lib';
import { resolveKey } from '../shared/keys';
import type { ResolvedKey } from '../shared/keys';
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

    const seal = (msg: Msg, resolved: ResolvedKey, payload: unknown): Msg => {
      const bytes = wrapPlaintext(payloadToBytes(payload), plaintext);
      msg.payload = encryptToWire(resolved.key, bytes, deviceIdOf(msg), { type: msgtype, fixedIv, kv: resolved.keyVersion });
      return msg;
    };

    this.on('input', inputFunnel<Msg>(this, (key, params) => RED._(key, params), (msg) => {
      if (ivError) throw ivError;
      const found = resolveKey(RED, def.key, { deviceid: deviceIdOf(msg), keyVersion: msg.keyVersion });
      const withKey = (resolved: ResolvedKey): Msg | Promise<Msg> =>
        // A rekey command gets the server's X25519 public key of that rekey here, inside the crypto node (its secret
        // stays wrapped in the device store).
        resolved.keyring && isRekeyCommand(msg.payload)
          ? withRekeyOffer(msg.payload, resolved.keyring, deviceIdOf(msg)).then((payload) => seal(msg, resolved, payload))
          : seal(msg, resolved, msg.payload);
      return found instanceof Promise ? found.then(withKey) : withKey(found);
    }));
  }
  RED.nodes.registerType('aes-encrypt', AesEncrypt);
};
