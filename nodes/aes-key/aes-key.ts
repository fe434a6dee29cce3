import { E2eeError, isE2eeError, parseKey } from '../lib';
import type { AesKeyNode } from '../shared/keys';
import type { NodeDef, RED } from '../shared/red';

export = function register(RED: RED) {
  function AesKey(this: AesKeyNode, def: NodeDef) {
    RED.nodes.createNode(this, def);
    // An empty setting (e.g. an unset environment variable) means the default.
    this.format = String(def.format || 'hex');
    this.auth = String(def.auth || 'none');
    try {
      this.material = parseKey(this.format, this.credentials?.key, this.auth);
    } catch (err) {
      this.keyError = isE2eeError(err) ? err : new E2eeError('bad-key');
      // The text names what is wrong with the configuration, never the key itself.
      this.warn(RED._(`e2ee.errors.${this.keyError.code}`, this.keyError.params));
    }
  }
  RED.nodes.registerType('aes-key', AesKey, { credentials: { key: { type: 'password' } } });
};
