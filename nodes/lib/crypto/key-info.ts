/** The HKDF info of every per-device key: a label, the device id and a key version. */
import { MAX_DEVICEID_BYTES } from './aes';
import { E2eeError } from '../common';

export const HKDF_INFO_DEVICE = 'esp-e2ee v1 device';
/** Device keys are AES-128 keys, whatever the size of the master. */
export const DEVICE_KEY_BYTES = 16;
/** The largest key version (it travels as 4 bytes). */
export const MAX_KEY_VERSION = 0xffffffff;

function checkVersion(version: number): void {
  if (!Number.isInteger(version) || version < 0 || version > MAX_KEY_VERSION) throw new E2eeError('bad-key-version');
}

/** The HKDF info of a device key: label ‖ 0x00 ‖ device id ‖ uint32be(version) (the rekey and wrapping use other labels). */
export function deviceKeyInfo(deviceId: string, version: number, label = HKDF_INFO_DEVICE): Buffer {
  checkVersion(version);
  const id = Buffer.from(deviceId, 'utf8');
  if (id.length === 0) throw new E2eeError('no-deviceid');
  if (id.length > MAX_DEVICEID_BYTES) throw new E2eeError('bad-deviceid', { max: MAX_DEVICEID_BYTES });
  const v = Buffer.alloc(4);
  v.writeUInt32BE(version);
  return Buffer.concat([Buffer.from(label, 'latin1'), Buffer.from([0]), id, v]);
}
