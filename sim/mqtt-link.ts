/**
 * The simulator's MQTT transport, as the firmware's: one connection under the device id with a persistent session
 * (clean off), uplinks published QoS 1 to <prefix>/<id>/up/<type>, and one subscription to <prefix>/<id>/down, where
 * config answers (to a registration or poll, matched by `re`) and commands arrive. Nothing is retained.
 */
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import type { HttpResult } from './device';
import { brokerUser } from '../nodes/lib';

export interface SimMqttOptions {
  url: string;
  id: string;
  password: string;
  prefix: string;
  timeoutMs: number;
  /** A downlink that answers no waiting request: a command. */
  onCommand(wire: unknown): void;
  /** A downlink opened as a config answer, or undefined when it is not one for this device. */
  openAnswer(wire: unknown): { re?: unknown } | undefined;
}

/** The status topic's payloads (not sealed: they only set the backend's displayed online flag). */
const ONLINE = '{"online":true}';
const OFFLINE = '{"online":false}';

export class SimMqtt {
  private client?: MqttClient;
  /** Requests waiting for their answer, by SEQN. */
  private readonly waiting = new Map<number, (wire: unknown) => void>();

  constructor(private readonly options: SimMqttOptions) {}

  private get status(): string {
    return `${this.options.prefix}/${this.options.id}/status`;
  }

  private get down(): string {
    return `${this.options.prefix}/${this.options.id}/down`;
  }

  /** Connects and subscribes; resolves with whether the broker kept the session (commands may be waiting). */
  connect(): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const client = mqtt.connect(this.options.url, {
        clientId: this.options.id,
        username: brokerUser(this.options.id),
        password: this.options.password,
        clean: false,
        protocolVersion: 4,
        reconnectPeriod: 1000,
        connectTimeout: 5000,
        // As the firmware: the broker says offline when the connection drops; the device says online when it connects.
        will: { topic: this.status, payload: Buffer.from(OFFLINE), qos: 0, retain: false },
      });
      this.client = client;
      client.on('message', (_topic, payload) => this.onDownlink(payload));
      client.on('connect', () => client.publish(this.status, ONLINE, { qos: 0, retain: false }));
      client.once('connect', (ack) => {
        client.subscribe(this.down, { qos: 1 }, (err, granted) => {
          if (err || !granted || granted[0]?.qos === 128) return reject(err ?? new Error(`the broker refused the subscription to ${this.down}`));
          resolve(ack.sessionPresent === true);
        });
      });
      client.once('error', (err) => reject(err));
    });
  }

  private onDownlink(payload: Buffer): void {
    let wire: unknown;
    try {
      wire = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    const answer = this.options.openAnswer(wire);
    const re = typeof answer?.re === 'number' ? answer.re : undefined;
    const waiter = re === undefined ? undefined : this.waiting.get(re);
    if (waiter) {
      this.waiting.delete(re as number);
      waiter(wire);
      return;
    }
    // A config answer nobody waits for (late, or recorded and replayed) is dropped; anything else may be a command.
    if (answer === undefined) this.options.onCommand(wire);
  }

  /** Whether a registration or poll waits for its answer. */
  get awaiting(): boolean {
    return this.waiting.size > 0;
  }

  /** Publishes an uplink (QoS 1); 200 once the broker has it, 0 when it could not take it. */
  send(type: string, sealed: unknown): Promise<HttpResult> {
    const client = this.client;
    if (!client) return Promise.resolve({ status: 0, body: undefined, headers: {} });
    return new Promise((resolve) => {
      client.publish(`${this.options.prefix}/${this.options.id}/up/${type}`, JSON.stringify(sealed), { qos: 1, retain: false }, (err) =>
        resolve({ status: err ? 0 : 200, body: undefined, headers: {} }),
      );
    });
  }

  /** Publishes a registration or poll and waits for its answer (the sealed config with `re` = seqn): 200, or 0 on timeout. */
  async exchange(type: 'register' | 'poll' | 'reading', sealed: unknown, seqn: number): Promise<HttpResult> {
    const answer = new Promise<unknown>((resolve) => {
      this.waiting.set(seqn, resolve);
      setTimeout(() => {
        if (this.waiting.delete(seqn)) resolve(undefined);
      }, this.options.timeoutMs);
    });
    const sent = await this.send(type, sealed);
    if (sent.status !== 200) {
      this.waiting.delete(seqn);
      return sent;
    }
    const body = await answer;
    return { status: body === undefined ? 0 : 200, body, headers: {} };
  }

  /** Ends the connection; the session stays on the broker (clean off). */
  close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const [, resolve] of this.waiting) resolve(undefined);
    this.waiting.clear();
    return client ? client.endAsync(true).then(() => undefined) : Promise.resolve();
  }
}
