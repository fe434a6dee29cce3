/**
 * A simulated ESP8266: it behaves like the firmware towards the backend.
 * It registers with a MAC-like id, posts encrypted readings with increasing
 * SEQN, polls its configuration and applies interval changes, and serves
 * POST /command on loopback, decrypting and replay-checking what it gets.
 *
 * With an authenticating key (hmac-sha256) it speaks the sealed protocol: registration and poll are sealed
 * uplinks that share the readings' SEQN, every uplink acknowledges the last accepted downlink SEQN, the config
 * answer is applied only when it verifies and answers this very request, and a rekey is an X25519 exchange whose
 * new key is stored before the command is acknowledged. With a plain key (auth none) it speaks the seed's plain registration and poll.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeyMaterial, MessageType, byteKeyMaterial, decryptEnvelope, encryptToWire, isE2eeError, parseEnvelope, rekeyKey, x25519, x25519Pair } from '../nodes/lib';
import type { StateFile } from './state';
import { SimMqtt } from './mqtt-link';

export interface SimDeviceOptions {
  id: string;
  baseUrl: string;
  key: KeyMaterial;
  state: StateFile;
  /** Seconds between readings (and polls) until the backend's config says otherwise. */
  interval: number;
  /**
   * Seconds it deep-sleeps between wakes, as the firmware's E2EE_SLEEP_S (hmac-sha256 only): declared at registration;
   * each wake is one reading whose answer is the sealed config; over MQTT it connects for the wake only.
   */
  sleep?: number;
  log?: (line: string) => void;
  /** The address registered as the device's (default 127.0.0.1; the backend pushes commands to private ranges only). */
  advertise?: string;
  /** The version of `key` (per-device keys; default 0). A key from a rekey in the state file takes precedence. */
  keyver?: number;
  /** The raw 16-byte device key `key` is made from (per-device keys): a rekey derives the next key from it. */
  deviceKey?: Buffer;
  /** The receive buffer declared at registration (default 1536, the firmware's). */
  rxbuf?: number;
  /** Extra request headers (tests: X-Forwarded-For behind a trusted proxy, to appear from another address). */
  headers?: Record<string, string>;
  /** http (default) or mqtt: the same sealed messages through a broker, as the firmware's MQTT transport does. */
  transport?: 'http' | 'mqtt';
  /** mqtt: the broker's URL (mqtt://host:port). */
  broker?: string;
  /** mqtt: the broker password of this device (esp-e2ee-keys derives it from the master); the user is the id. */
  brokerPassword?: string;
  /** mqtt: the topic prefix (default esp-e2ee). */
  mqttPrefix?: string;
  /** mqtt: how long a registration or poll waits for its answer (default 5 s). */
  answerTimeoutMs?: number;
}

/** Polls made at once after an answer that says more commands wait. */
const MAX_FOLLOW_UP_POLLS = 5;

/** The firmware's receive buffer for config answers and pushed commands. */
export const SIM_RXBUF = 1536;

export interface HttpResult {
  status: number;
  body: unknown;
  headers: http.IncomingHttpHeaders;
}

/** A small JSON-over-HTTP client on node:http (keep-alive agent per device). */
export function requestJson(url: string, method: string, body?: unknown, headers: Record<string, string> = {}, agent?: http.Agent): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(url, { method, agent, headers: { ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
      });
    });
    req.setTimeout(10000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Errors that mean the backend (or the broker) was not reached: not a rejection of what was sent. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'no answer']);

/** The longest a device waits between tries while the backend cannot be reached. */
const MAX_BACKOFF_MS = 60_000;

/** What a device did, for the simulator's report lines: counted since the last report. */
export class SimStats {
  sent = 0;
  accepted = 0;
  commands = 0;
  /** Rejection reason (`HTTP 400`, ...) → count: the backend answered, and said no. */
  readonly rejected = new Map<string, number>();
  /** Connection error (`ECONNREFUSED`, ...) → count: the backend was not reached. */
  readonly unreachable = new Map<string, number>();

  reject(reason: string, count = 1): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + count);
  }

  /** A failed exchange: a connection error counts as unreachable, anything else as a rejection. Says which. */
  fail(code: string, count = 1): 'unreachable' | 'rejected' {
    if (!UNREACHABLE.has(code)) {
      this.reject(code, count);
      return 'rejected';
    }
    this.unreachable.set(code, (this.unreachable.get(code) ?? 0) + count);
    return 'unreachable';
  }

  get unreachableTotal(): number {
    let n = 0;
    for (const count of this.unreachable.values()) n += count;
    return n;
  }

  get rejectedTotal(): number {
    let n = 0;
    for (const count of this.rejected.values()) n += count;
    return n;
  }

  /** Adds another's counts to this one. */
  add(other: SimStats): void {
    this.sent += other.sent;
    this.accepted += other.accepted;
    this.commands += other.commands;
    for (const [reason, count] of other.rejected) this.reject(reason, count);
    for (const [code, count] of other.unreachable) this.fail(code, count);
  }

  /** `sent N, accepted N, rejected N (reasons)[, unreachable N (errors)], commands N` */
  toString(): string {
    const list = (m: Map<string, number>) => [...m].map(([reason, count]) => `${reason}: ${count}`).join(', ');
    const reasons = list(this.rejected);
    const unreachable = this.unreachableTotal > 0 ? `, unreachable ${this.unreachableTotal} (${list(this.unreachable)})` : '';
    return `sent ${this.sent}, accepted ${this.accepted}, rejected ${this.rejectedTotal}${reasons ? ` (${reasons})` : ''}${unreachable}, commands ${this.commands}`;
  }
}

export class SimDevice {
  readonly id: string;
  /** Counts since the last takeStats(). */
  private stats = new SimStats();
  interval: number;
  led = false;
  cfgsn = 0;
  readonly received: Array<{ seqn: number; cmd: unknown; via: 'push' | 'poll' }> = [];
  readonly rejectedCommands: string[] = [];
  private readonly nextSeq: () => number;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  private server?: http.Server;
  private timer?: NodeJS.Timeout;
  private readonly started = Date.now();
  /** The device's key and its version (changed by a rekey). */
  key: KeyMaterial;
  keyver: number | undefined;
  /** The raw device key (per-device keys), from which a rekey goes on. */
  private rawKey: Buffer | undefined;
  /** After a rekey: its X25519 public key, sent as `epk` until a config answer under the new key shows the server has it. */
  private announce: Buffer | undefined;
  /** Test hook: called at each step of taking a rekey; throwing there stands for a power cut at that step. */
  onRekeyStep?: (step: 'received' | 'stored') => void;
  /** Config answers refused (not verifying, or not answering the request): the reason of each. */
  readonly refusedAnswers: string[] = [];

  constructor(private readonly options: SimDeviceOptions) {
    this.id = options.id;
    this.interval = options.interval;
    this.nextSeq = options.state.uplinkCounter(options.id);
    const rekeyed = options.state.rekeyed(options.id);
    this.key = rekeyed ? byteKeyMaterial(Buffer.from(rekeyed.key, 'hex'), 'hmac-sha256') : options.key;
    this.keyver = rekeyed ? rekeyed.keyver : options.keyver;
    this.rawKey = rekeyed ? Buffer.from(rekeyed.key, 'hex') : options.deviceKey;
    // After a restart it cannot know whether the server has its public key: it sends it again (the server ignores it
    // once it holds the key).
    this.announce = rekeyed?.epk ? Buffer.from(rekeyed.epk, 'hex') : undefined;
  }

  /** The key authenticates (hmac-sha256): the sealed protocol. */
  get sealed(): boolean {
    return this.key.kind === 'bytes' && this.key.macKey !== undefined;
  }

  /** Seals an uplink of the given type, with the key version when keys are per device. */
  seal(type: MessageType, plaintext: Record<string, unknown>): unknown {
    return encryptToWire(this.key, Buffer.from(JSON.stringify(plaintext)), this.id, { type, kv: this.keyver, ...(this.announce ? { epk: this.announce } : {}) });
  }

  /** The last accepted downlink SEQN, which every sealed uplink acknowledges. */
  get ack(): number {
    return this.options.state.lastDownlink(this.id);
  }

  private log(line: string): void {
    this.options.log?.(`[${this.id}] ${line}`);
  }

  private url(suffix = ''): string {
    return `${this.options.baseUrl}/api/devices/${encodeURIComponent(this.id)}${suffix}`;
  }

  /** mqtt: the connection to the broker (a persistent session under the device id). */
  private mqtt?: SimMqtt;

  /**
   * Connects to the broker (mqtt) with a persistent session: commands the backend published while the device was
   * away arrive now. Returns whether the broker had kept the session.
   */
  async connect(): Promise<boolean> {
    if (this.options.transport !== 'mqtt') return false;
    this.mqtt = new SimMqtt({
      url: this.options.broker ?? 'mqtt://127.0.0.1:1883',
      id: this.id,
      password: this.options.brokerPassword ?? '',
      prefix: this.options.mqttPrefix ?? 'esp-e2ee',
      timeoutMs: this.options.answerTimeoutMs ?? 5000,
      // A downlink that is not the awaited answer: a command published to the device. Taken, it is acknowledged at
      // once by a poll (as the firmware does), whose answer brings the next waiting command. A rekey that comes
      // while an answer is awaited waits for that answer (sealed under the current key), which offers it again.
      onCommand: (wire) => {
        // (A sleeper acknowledges with its next wake's reading: one exchange per wake.)
        if (this.runCommand(wire, 'push', this.mqtt?.awaiting ?? false) && !this.sleeper) this.ackSoon();
      },
      openAnswer: (wire) => this.openAnswer(wire),
    });
    return this.mqtt.connect();
  }

  /** Drops the broker connection without a clean session end (the firmware losing power or WiFi). */
  async disconnect(): Promise<void> {
    await this.mqtt?.close();
    this.mqtt = undefined;
  }

  private acking = false;
  private ackAgain = false;

  /**
   * A poll soon, outside the schedule: it carries the ack of a command that came over MQTT. One that comes while that
   * poll is under way (sealed before it arrived) gets another.
   */
  private ackSoon(): void {
    if (this.acking) {
      this.ackAgain = true;
      return;
    }
    this.acking = true;
    setImmediate(() => {
      this.poll()
        .catch(() => undefined)
        .finally(() => {
          this.acking = false;
          if (this.ackAgain) {
            this.ackAgain = false;
            this.ackSoon();
          }
        });
    });
  }

  /** The config answer inside a downlink, opened under the device's key, or undefined when it is not one. */
  private openAnswer(wire: unknown): { re?: unknown } | undefined {
    try {
      return JSON.parse(decryptEnvelope(this.key, parseEnvelope(wire), this.id, 'config').toString('utf8'));
    } catch {
      return undefined;
    }
  }

  /** Starts the /command server on an ephemeral loopback port. */
  async listen(): Promise<number> {
    this.server = http.createServer((req, res) => this.onCommandRequest(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  /** The port of the /command server (undefined before listen). */
  get cmdPort(): number | undefined {
    return this.server ? (this.server.address() as AddressInfo).port : undefined;
  }

  async register(): Promise<HttpResult> {
    const cmdport = this.server ? (this.server.address() as AddressInfo).port : undefined;
    const body = { ipaddr: this.options.advertise ?? '127.0.0.1', ssid: 'esp-e2ee-sim', ...(cmdport ? { cmdport } : {}), ...(this.sleeper ? { sleep: this.interval } : {}) };
    if (!this.sealed) {
      const r = await requestJson(this.url(), 'POST', body, this.options.headers ?? {}, this.agent);
      this.log(`register -> ${r.status}`);
      return r;
    }
    const seqn = this.nextSeq();
    const sealed = this.seal('register', { ...body, rxbuf: this.options.rxbuf ?? SIM_RXBUF, SEQN: seqn, ack: this.ack });
    const r = this.mqtt ? await this.mqtt.exchange('register', sealed, seqn) : await requestJson(this.url(), 'POST', sealed, this.options.headers ?? {}, this.agent);
    this.log(`register ${seqn} -> ${r.status}`);
    if (r.status === 200 || r.status === 201) this.applyAnswer(r.body, seqn);
    return r;
  }

  /**
   * Opens a sealed config answer and applies it: only when it verifies under the device's key as a config answer
   * and answers the request with SEQN `re`. Returns whether it was applied.
   */
  applyAnswer(wire: unknown, re: number): boolean {
    let answer: { re?: unknown; cfgsn?: unknown; data?: Record<string, unknown>; commands?: unknown[]; more?: unknown };
    try {
      answer = JSON.parse(decryptEnvelope(this.key, parseEnvelope(wire), this.id, 'config').toString('utf8'));
    } catch (err) {
      this.refusedAnswers.push(isE2eeError(err) ? err.code : 'bad-json');
      this.log('config answer refused: it does not verify');
      return false;
    }
    if (answer.re !== re) {
      // A recorded answer to an earlier request: replayed.
      this.refusedAnswers.push('not-this-request');
      this.log(`config answer refused: it answers request ${String(answer.re)}, not ${re}`);
      return false;
    }
    // A config answer under the rekeyed key: the server has the key, so the public key need not travel any more.
    this.announce = undefined;
    this.applyConfig(answer);
    return true;
  }

  private applyConfig(body: { cfgsn?: unknown; data?: Record<string, unknown>; commands?: unknown[]; more?: unknown }): void {
    this.lastMore = body.more === true;
    if (typeof body.cfgsn === 'number' && body.cfgsn !== this.cfgsn) {
      this.cfgsn = body.cfgsn;
      const interval = Number(body.data?.interval);
      if (Number.isFinite(interval) && interval > 0) this.interval = interval;
      this.log(`config ${this.cfgsn}: interval ${this.interval}s`);
    }
    for (const command of body.commands ?? []) this.runCommand(command, 'poll');
  }

  /** A sleeper (--sleep, sealed): one exchange per wake. */
  get sleeper(): boolean {
    return (this.options.sleep ?? 0) > 0 && this.sealed;
  }

  /** Encrypts and posts one reading; returns the HTTP result and the SEQN used. A sleeper's is answered with the config. */
  async postReading(): Promise<HttpResult & { seqn: number; sent: unknown }> {
    const seqn = this.nextSeq();
    const plaintext = { data: { a0: Math.floor(Math.random() * 1024), heap: 30000 - (seqn % 500), uptime: Math.floor((Date.now() - this.started) / 1000) }, ...(this.sleeper ? { sleep: this.interval } : {}), SEQN: seqn, ...(this.sealed ? { ack: this.ack } : {}) };
    const sent = this.seal('reading', plaintext);
    if (this.sleeper) {
      const r = this.mqtt ? await this.mqtt.exchange('reading', sent, seqn) : await requestJson(this.url('/readings'), 'POST', sent, this.options.headers ?? {}, this.agent);
      if (r.status === 200 && !this.applyAnswer(r.body, seqn)) return { ...r, status: 502, seqn, sent };
      return { ...r, seqn, sent };
    }
    // Over MQTT there is no answer: 200 means the broker took it (PUBACK).
    const r = this.mqtt ? await this.mqtt.send('reading', sent) : await requestJson(this.url('/readings'), 'POST', sent, this.options.headers ?? {}, this.agent);
    return { ...r, seqn, sent };
  }

  /** Polls the config; applies a new cfgsn's interval and runs queued commands. */
  async poll(followUps = 0): Promise<HttpResult> {
    const seqn = this.sealed ? this.nextSeq() : 0;
    const r = this.mqtt
      ? await this.mqtt.exchange('poll', this.seal('poll', { SEQN: seqn, ack: this.ack }), seqn)
      : this.sealed
        ? await requestJson(this.url('/poll'), 'POST', this.seal('poll', { SEQN: seqn, ack: this.ack }), this.options.headers ?? {}, this.agent)
        : await requestJson(this.url(), 'GET', undefined, this.options.headers ?? {}, this.agent);
    if (r.status === 404) {
      this.log('not registered: registering again');
      await this.register();
      return r;
    }
    if (r.status === 200 && r.body) {
      if (this.sealed) {
        // More commands than fit one answer: the next poll comes at once (a few times at most, so commands the
        // device cannot take, which it never acknowledges, cannot keep it polling).
        if (this.applyAnswer(r.body, seqn) && this.lastMore && followUps < MAX_FOLLOW_UP_POLLS) return this.poll(followUps + 1);
      } else this.applyConfig(r.body as { cfgsn?: number; data?: Record<string, unknown>; commands?: unknown[] });
    }
    return r;
  }

  /** The last applied answer said more commands wait. */
  private lastMore = false;

  /** Decrypts, replay-checks and applies a command; returns whether it was accepted. */
  runCommand(wire: unknown, via: 'push' | 'poll', deferRekey = false): boolean {
    let plain: { cmd?: Record<string, unknown>; SEQN?: unknown; rekey?: { kv?: unknown; pub?: unknown } };
    try {
      plain = JSON.parse(decryptEnvelope(this.key, parseEnvelope(wire), this.id, 'command').toString('utf8'));
    } catch (err) {
      this.rejectedCommands.push(isE2eeError(err) ? err.code : 'bad-json');
      return false;
    }
    const seqn = Number(plain.SEQN);
    if (!Number.isSafeInteger(seqn) || seqn <= this.options.state.lastDownlink(this.id)) {
      this.rejectedCommands.push('replay');
      this.log(`command ${String(plain.SEQN)} rejected: replay`);
      return false;
    }
    if (plain.rekey && deferRekey) return false;
    if (plain.rekey) return this.rekey(plain.rekey, seqn, via);
    this.options.state.acceptDownlink(this.id, seqn);
    this.stats.commands++;
    const cmd = plain.cmd ?? {};
    if (typeof cmd.led === 'boolean') this.led = cmd.led;
    if (typeof cmd.interval === 'number' && cmd.interval > 0) this.interval = cmd.interval;
    this.received.push({ seqn, cmd, via });
    this.log(`command ${seqn} via ${via}: ${JSON.stringify(cmd)}`);
    return true;
  }

  /**
   * A rekey command: the device makes its own X25519 key pair, derives the new key from the shared secret with the
   * server's public key (and its current key), and stores key, version, its public key and the command's SEQN in
   * one write before anything uses them; its next uplinks carry the public key (`epk`).
   */
  private rekey(rekey: { kv?: unknown; pub?: unknown }, seqn: number, via: 'push' | 'poll'): boolean {
    if (typeof rekey.kv !== 'number' || typeof rekey.pub !== 'string' || !/^[0-9a-f]{64}$/i.test(rekey.pub) || !this.rawKey) {
      this.rejectedCommands.push('bad-rekey');
      return false;
    }
    this.onRekeyStep?.('received');
    const server = Buffer.from(rekey.pub, 'hex');
    const pair = x25519Pair();
    let key: Buffer;
    try {
      key = rekeyKey(x25519(pair.secret, server), this.rawKey, this.id, rekey.kv, server, pair.public);
    } catch {
      this.rejectedCommands.push('bad-rekey');
      return false;
    }
    this.options.state.storeKey(this.id, key.toString('hex'), rekey.kv, seqn, pair.public.toString('hex'));
    this.onRekeyStep?.('stored');
    this.rawKey = key;
    this.key = byteKeyMaterial(key, 'hmac-sha256');
    this.keyver = rekey.kv;
    this.announce = pair.public;
    this.stats.commands++;
    this.received.push({ seqn, cmd: { rekey: rekey.kv }, via });
    this.log(`command ${seqn}: rekey to key version ${rekey.kv}`);
    return true;
  }

  private onCommandRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/command') return reply(404, { status: 'NOK' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 4096) chunks.push(c);
    });
    req.on('end', () => {
      if (size > 4096) return reply(413, { status: 'NOK' });
      let wire: unknown;
      try {
        wire = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return reply(400, { status: 'NOK' });
      }
      return this.runCommand(wire, 'push') ? reply(200, { status: 'OK' }) : reply(400, { status: 'NOK' });
    });
  }

  /** Runs the firmware loop: a reading and a poll every interval (a sleeper: a wake, one reading, every interval). */
  run(): void {
    const tick = async (): Promise<void> => {
      if (this.sleeper) {
        await this.wake();
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.interval * 1000);
        return;
      }
      this.stats.sent++;
      let unreachable = false;
      try {
        const r = await this.postReading();
        if (r.status === 200) this.stats.accepted++;
        else if (r.status === 0) unreachable = this.stats.fail('no answer') === 'unreachable';
        else {
          this.stats.reject(`HTTP ${r.status}`);
          this.log(`reading ${r.seqn} -> ${r.status}`);
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'error';
        unreachable = this.stats.fail(code) === 'unreachable';
        if (!unreachable) this.log(`reading: ${(err as Error).message}`);
      }
      // A backend that is not there is not asked again at once: the wait doubles up to a minute (as the firmware's).
      const wait = this.backoff(unreachable);
      if (!unreachable) {
        try {
          await this.poll();
        } catch (err) {
          this.log(`poll: ${(err as Error).message}`);
        }
      }
      if (this.timer !== undefined) this.timer = setTimeout(tick, wait);
    };
    this.timer = setTimeout(tick, 0);
  }

  /**
   * A sleeper's wake, as the firmware's: over MQTT it connects (the broker hands over what it queued), sends its
   * reading, whose answer is the config with the commands; it polls only when the answer says more wait; then it
   * drops the connection and sleeps. A command taken is acknowledged by the next wake's reading.
   */
  private async wake(): Promise<void> {
    this.stats.sent++;
    try {
      if (this.options.transport === 'mqtt' && !this.mqtt) await this.connect();
      const r = await this.postReading();
      if (r.status === 200) this.stats.accepted++;
      else {
        this.stats.reject(`HTTP ${r.status}`);
        this.log(`reading ${r.seqn} -> ${r.status}`);
      }
      if (r.status === 404) await this.register();
      for (let i = 0; r.status === 200 && this.lastMore && i < MAX_FOLLOW_UP_POLLS; i++) await this.poll(MAX_FOLLOW_UP_POLLS);
    } catch (err) {
      if (this.stats.fail((err as NodeJS.ErrnoException).code ?? 'error') === 'rejected') this.log(`wake: ${(err as Error).message}`);
    }
    if (this.options.transport === 'mqtt') await this.disconnect();
  }

  /** Consecutive ticks that did not reach the backend. */
  private misses = 0;

  /** The wait before the next tick: the interval, doubled per consecutive miss up to MAX_BACKOFF_MS (or the interval). */
  private backoff(unreachable: boolean): number {
    const interval = this.interval * 1000;
    if (!unreachable) {
      if (this.misses > 0) this.log(`backend reachable again after ${this.misses} tries`);
      this.misses = 0;
      return interval;
    }
    this.misses++;
    const wait = Math.min(Math.max(MAX_BACKOFF_MS, interval), interval * 2 ** this.misses);
    // One line when it starts, then one per doubling: not one per device per second.
    if ((this.misses & (this.misses - 1)) === 0) this.log(`backend unreachable (${this.misses} in a row): next try in ${Math.round(wait / 100) / 10} s`);
    return wait;
  }

  /** The counts since the last call, and a fresh start. */
  takeStats(): SimStats {
    const taken = this.stats;
    this.stats = new SimStats();
    return taken;
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.agent.destroy();
    await this.disconnect();
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
