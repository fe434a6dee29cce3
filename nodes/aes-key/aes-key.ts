import { DeviceKeyring, E2eeError, isE2eeError, parseKey, parseKeyBytes } from '../lib';
import type { AuthMode } from '../lib';
import type { AesKeyNode } from '../shared/keys';
import { resolveStore } from '../shared/stores';
import type { NodeDef, RED } from '../shared/red';

export = function register(RED: RED) {
  function AesKey(this: AesKeyNode, def: NodeDef) {
    RED.nodes.createNode(this, def);
    // An empty setting (e.g. an unset environment variable) means the default.
    this.format = String(def.format || 'hex');
    this.auth = String(def.auth || 'none');
    this.scope = def.scope === 'per-device' ? 'per-device' : 'shared';
    try {
      const material = parseKey(this.format, this.credentials?.key, this.auth);
      if (this.scope === 'per-device') {
        // The secret is a master key: every device's key is derived from it, message by message.
        if (this.format !== 'hex' && this.format !== 'base64') throw new E2eeError('bad-scope');
        // With a device store, rekeys: the keys they make are kept there, wrapped under the master.
        const storeId = typeof def.store === 'string' && def.store ? def.store : undefined;
        this.keyring = new DeviceKeyring(parseKeyBytes(this.format, String(this.credentials?.key)), this.auth as AuthMode, storeId ? () => resolveStore(RED, storeId).store : undefined);
      } else {
        this.material = material;
      }
    } catch (err) {
      this.keyError = isE2eeError(err) ? err : new E2eeError('bad-key');
      // The text names what is wrong with the configuration, never the key itself.
      this.warn(RED._(`e2ee.errors.${this.keyError.code}`, this.keyError.params));
    }
  }
  RED.nodes.registerType('aes-key', AesKey, { credentials: { key: { type: 'password' } } });
};
