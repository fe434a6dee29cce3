/**
 * Per-device MQTT broker credentials from the same master key: the user name is the device id, the password
 *
 *   HKDF-SHA256(ikm = master, salt = empty, info = "esp-e2ee v1 broker" ‖ 0x00 ‖ UTF-8 device id, 16 bytes) as hex
 *
 * and the backend's own password the same with the info "esp-e2ee v1 broker-backend". They only limit what a client
 * may do on the broker (its ACL); the end-to-end protection does not rest on them.
 */
import * as crypto from 'node:crypto';
import { E2eeError } from '../common';

export const HKDF_INFO_BROKER = 'esp-e2ee v1 broker';
export const HKDF_INFO_BROKER_BACKEND = 'esp-e2ee v1 broker-backend';
/** Mosquitto 2's password hash: PBKDF2-SHA512, this many iterations (mosquitto_passwd's default). */
export const MOSQUITTO_ITERATIONS = 101;

/**
 * A device's broker user name: its id, with each `:` written `%3A` (Mosquitto's password file separates the user
 * name from the hash with a colon, so a MAC address cannot be a user name there; `%` is not in the id alphabet, so
 * every id keeps its own user name).
 */
export function brokerUser(deviceId: string): string {
  return deviceId.replace(/:/g, '%3A');
}

/** The device id of a broker user name (the inverse of brokerUser). */
export function deviceOfBrokerUser(user: string): string {
  return user.replace(/%3A/g, ':');
}

/** A device's broker password (32 hex digits). */
export function brokerPassword(master: Buffer, deviceId: string): string {
  const id = Buffer.from(deviceId, 'utf8');
  if (id.length === 0 || id.length > 64) throw new E2eeError('bad-deviceid', { max: 64 });
  const info = Buffer.concat([Buffer.from(HKDF_INFO_BROKER, 'latin1'), Buffer.from([0]), id]);
  return Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), info, 16)).toString('hex');
}

/** The backend's broker password (32 hex digits). */
export function backendBrokerPassword(master: Buffer): string {
  return Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), HKDF_INFO_BROKER_BACKEND, 16)).toString('hex');
}

/** One line of a Mosquitto 2 `password_file`: `user:$7$101$<base64 salt>$<base64 PBKDF2-SHA512>`. */
export function mosquittoPasswordLine(user: string, password: string, salt = crypto.randomBytes(12)): string {
  if (/[:\n\r]/.test(user)) throw new E2eeError('bad-deviceid', { max: 64 });
  const hash = crypto.pbkdf2Sync(password, salt, MOSQUITTO_ITERATIONS, 64, 'sha512');
  return `${user}:$7$${MOSQUITTO_ITERATIONS}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Constant-time comparison of two passwords (of any length). */
export function samePassword(a: string, b: string): boolean {
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}
