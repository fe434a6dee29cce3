#!/usr/bin/env node
/**
 * esp-e2ee-sim: simulated ESP8266 devices against the backend.
 *
 *   npx esp-e2ee-sim --url http://localhost:1880 --devices 10 --interval 1
 *
 * The key comes from --key, E2EE_KEY (hex) or <data dir>/aes-key.hex; --auth
 * and --scope must match the backend's aes-key (hmac-sha256 with a key per
 * device derived from that master, as `npm start` sets up; with --auth none
 * one shared key). Once per interval it prints what happened; at the end a summary,
 * and it exits non-zero when no reading was accepted.
 */
import { parseArgs } from 'node:util';
import { DeviceKeyring, brokerPassword, parseKey, parseKeyBytes } from '../nodes/lib';
import type { AuthMode } from '../nodes/lib';
import { backendKey } from './backend-key';
import { SimDevice, SimStats } from './device';
import { StateFile, defaultStateFile } from './state';

const HELP = `Usage: esp-e2ee-sim [options]
  --url URL          backend base URL (default http://127.0.0.1:1880)
  --devices N        number of simulated devices (default 1)
  --interval S       seconds between readings until the config changes it (default 5)
  --sleep S          battery devices that deep-sleep S seconds between wakes, as the firmware's E2EE_SLEEP_S: one
                     reading per wake, answered with the config and commands (hmac-sha256; replaces --interval)
  --key HEX          AES key in hex (default: $E2EE_KEY, else <data dir>/aes-key.hex)
  --auth MODE        hmac-sha256 (default) or none
  --scope SCOPE      per-device (default with hmac-sha256: --key is the master, each device derives its own)
                     or shared (default with none: every device uses --key)
  --data DIR         the backend's data dir (default: $E2EE_DATA_DIR): key and state file from there
  --state FILE       state file for sequence numbers (default: <data dir>/sim-state.json, else
                     $XDG_STATE_HOME/esp-e2ee-sim/state.json, i.e. ~/.local/state/...)
  --prefix HEX       first three bytes of the device ids (default 5CCF7F)
  --duration S       stop after S seconds (default: run until Ctrl-C)
  --quiet            no per-device lines, only the report lines and the summary
  --transport T      http (default) or mqtt: the same sealed messages through a broker (hmac-sha256, per-device)
  --broker URL       with --transport mqtt: the broker (default mqtt://127.0.0.1:1883, npm start's embedded one)
  --mqtt-prefix P    with --transport mqtt: the topic prefix (default esp-e2ee)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:1880' },
      devices: { type: 'string', default: '1' },
      interval: { type: 'string', default: '5' },
      sleep: { type: 'string' },
      key: { type: 'string' },
      auth: { type: 'string', default: 'hmac-sha256' },
      scope: { type: 'string' },
      data: { type: 'string', default: process.env.E2EE_DATA_DIR || undefined },
      state: { type: 'string' },
      prefix: { type: 'string', default: '5CCF7F' },
      duration: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      transport: { type: 'string', default: 'http' },
      broker: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      'mqtt-prefix': { type: 'string', default: 'esp-e2ee' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const secret = backendKey(values, 'key');
  const shared = parseKey('hex', secret, values.auth);
  const scope = values.scope ?? (values.auth === 'none' ? 'shared' : 'per-device');
  if (scope !== 'shared' && scope !== 'per-device') throw new Error('--scope must be per-device or shared');
  // Per device: the simulator stands in for the provisioning tool too, deriving each device's key from the master.
  const ring = scope === 'per-device' ? new DeviceKeyring(parseKeyBytes('hex', secret), values.auth as AuthMode) : undefined;
  const count = Number(values.devices);
  const sleep = values.sleep === undefined ? 0 : Number(values.sleep);
  if (!Number.isInteger(sleep) || sleep < 0 || sleep > 86400) throw new Error('--sleep must be a whole number of seconds up to 86400');
  if (sleep > 0 && values.auth === 'none') throw new Error('--sleep needs --auth hmac-sha256 (a sleeper\'s reading is answered with the sealed config)');
  const interval = sleep > 0 ? sleep : Number(values.interval);
  const duration = values.duration === undefined ? undefined : Number(values.duration);
  if (!Number.isInteger(count) || count < 1 || count > 100000) throw new Error('--devices must be a positive integer');
  if (!(interval > 0)) throw new Error('--interval must be a positive number of seconds');
  if (duration !== undefined && !(duration > 0)) throw new Error('--duration must be a positive number of seconds');
  if (!/^[0-9A-Fa-f]{6}$/.test(values.prefix)) throw new Error('--prefix must be 6 hex digits');
  const transport = values.transport;
  if (transport !== 'http' && transport !== 'mqtt') throw new Error('--transport must be http or mqtt');
  if (transport === 'mqtt' && !ring) throw new Error('--transport mqtt needs per-device keys (hmac-sha256): the broker credentials derive from the master');
  const baseUrl = values.url.replace(/\/+$/, '');
  const stateFile = values.state ?? defaultStateFile(values.data);
  const state = new StateFile(stateFile);
  const log = values.quiet ? undefined : (line: string) => console.log(line);
  const prefix = values.prefix.toUpperCase().match(/../g)!.join(':');
  const devices: SimDevice[] = [];
  for (let i = 0; i < count; i++) {
    const suffix = i.toString(16).toUpperCase().padStart(6, '0').match(/../g)!.join(':');
    const id = `${prefix}:${suffix}`;
    const mqttOptions = transport === 'mqtt' ? { transport, broker: values.broker, brokerPassword: brokerPassword(parseKeyBytes('hex', secret), id), mqttPrefix: values['mqtt-prefix'] } as const : {};
    const device = new SimDevice({ id, baseUrl, key: ring ? ring.material(id) : shared, keyver: ring ? 0 : undefined, deviceKey: ring?.deviceKey(id), state, interval, sleep, log, ...mqttOptions });
    if (transport === 'mqtt') {
      try {
        await device.connect();
      } catch (err) {
        throw new Error(`cannot use the broker ${values.broker} (${(err as Error).message}): is it running, is --broker its address, and does it know this device (esp-e2ee-keys --mosquitto)?`);
      }
    } else if (!sleep) await device.listen();  // (a sleeper is not reachable: no command port)
    devices.push(device);
    let r;
    try {
      r = await device.register();
    } catch (err) {
      throw new Error(`cannot reach ${baseUrl} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): is the backend running, and is --url its address?`);
    }
    if (r.status === 0 && transport === 'mqtt') throw new Error(`register ${device.id}: no answer on ${values['mqtt-prefix']}/${device.id}/down within 5 s: is the backend connected to ${values.broker}, and the key the backend's?`);
    if (r.status === 400 && device.sealed) {
      throw new Error(`registration of ${device.id} refused (HTTP 400): the key does not match the backend's (check --key or E2EE_KEY, --auth and --scope)`);
    }
    if (r.status !== 200 && r.status !== 201) throw new Error(`register ${device.id}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    device.run();
  }
  console.log(`${devices.length} simulated device(s) running against ${transport === 'mqtt' ? `${values.broker} (MQTT)` : baseUrl}; state in ${stateFile}`);

  const started = Date.now();
  const total = new SimStats();
  const collect = () => {
    const window = new SimStats();
    for (const d of devices) window.add(d.takeStats());
    total.add(window);
    return window;
  };
  const reporter = setInterval(() => console.log(`${new Date().toLocaleTimeString()} ${collect()}`), Math.max(1, interval) * 1000);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(reporter);
      await Promise.all(devices.map((d) => d.stop()));
      collect();
      const seconds = Math.round((Date.now() - started) / 1000);
      console.log(`summary after ${seconds} s, ${devices.length} device(s): ${total}`);
      if (total.accepted === 0 && total.rejectedTotal === 0 && total.unreachableTotal > 0) console.error(`esp-e2ee-sim: no reading was accepted: the backend was not reached (${[...total.unreachable.keys()].join(', ')}): is it still running at ${baseUrl}?`);
      else if (total.accepted === 0) console.error('esp-e2ee-sim: no reading was accepted: check --url, the key (--key/E2EE_KEY), --auth and --scope against the backend');
      resolve(total.accepted === 0 ? 1 : 0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (duration !== undefined) setTimeout(stop, duration * 1000);
  });
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`esp-e2ee-sim: ${err.message}`);
    process.exit(1);
  },
);
