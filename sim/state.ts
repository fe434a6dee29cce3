/**
 * The simulator's persistent state, like the firmware's flash: per device, a
 * reserved block of uplink sequence numbers (written once every BLOCK
 * messages, continued from the reserved bound after a restart) and the last
 * accepted downlink SEQN.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const SEQ_BLOCK = 64;

/** Where the state lives when --state is not given: never the working tree. */
export function defaultStateFile(dataDir: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (dataDir) return path.join(dataDir, 'sim-state.json');
  const stateHome = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(stateHome, 'esp-e2ee-sim', 'state.json');
}

interface DeviceState {
  /** Uplink numbers below this may have been used; after a restart counting resumes here. */
  reserved: number;
  /** Highest downlink (command) SEQN accepted. */
  downlink: number;
  /** After a rekey: the device's key (hex) and its version, as the firmware keeps them in flash. */
  key?: string;
  keyver?: number;
  /** Its X25519 public key of that rekey (hex), sent as `epk` until the server shows it has the key. */
  epk?: string;
}

export class StateFile {
  private readonly devices: Record<string, DeviceState>;

  constructor(readonly file: string) {
    this.devices = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')).devices ?? {}) : {};
  }

  private save(): void {
    // Write-then-rename, so a crash never leaves a torn file.
    fs.mkdirSync(path.dirname(path.resolve(this.file)), { recursive: true });
    const tmp = `${this.file}.tmp`;
    // (It may hold a device key after a rekey: readable by its owner only.)
    fs.writeFileSync(tmp, JSON.stringify({ devices: this.devices }, null, 1), { mode: 0o600 });
    fs.renameSync(tmp, this.file);
  }

  private device(id: string): DeviceState {
    return (this.devices[id] ??= { reserved: 0, downlink: 0 });
  }

  /** A counter for a device that resumes past every number it may have used. */
  uplinkCounter(id: string): () => number {
    const state = this.device(id);
    let next = state.reserved;
    let bound = next;
    return () => {
      if (next >= bound) {
        bound = next + SEQ_BLOCK;
        state.reserved = bound;
        this.save();
      }
      return next++;
    };
  }

  lastDownlink(id: string): number {
    return this.device(id).downlink;
  }

  acceptDownlink(id: string, seqn: number): void {
    this.device(id).downlink = seqn;
    this.save();
  }

  /** The key a rekey gave the device, if any. */
  rekeyed(id: string): { key: string; keyver: number; epk?: string } | undefined {
    const d = this.device(id);
    return d.key !== undefined && d.keyver !== undefined ? { key: d.key, keyver: d.keyver, ...(d.epk ? { epk: d.epk } : {}) } : undefined;
  }

  /**
   * Stores a new key and version and accepts the rekey command's SEQN in one write, as the firmware must: the key is
   * on flash before the command is acknowledged.
   */
  storeKey(id: string, key: string, keyver: number, seqn: number, epk: string): void {
    Object.assign(this.device(id), { key, keyver, downlink: seqn, epk });
    this.save();
  }
}
