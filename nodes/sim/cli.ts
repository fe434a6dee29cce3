#!/usr/bin/env node
/**
 * esp-e2ee-sim: simulated ESP8266 devices against the backend.
 *
 *   npx esp-e2ee-sim --url http://localhost:1880 --devices 10 --interval 1
 *
 * The key comes from --key or E2EE_KEY (hex); --auth must match the
 * backend's aes-key (hmac-sha256 by default, as `npm start` sets up).
 */
import { parseArgs } from 'node:util';
import { parseKey } from '../lib';
import { SimDevice } from './device';
import { StateFile } from './state';

const HELP = `Usage: esp-e2ee-sim [options]
  --url URL          backend base URL (default http://127.0.0.1:1880)
  --devices N        number of simulated devices (default 1)
  --interval S       seconds between readings until the config changes it (default 5)
  --key HEX          AES key in hex (default: $E2EE_KEY)
  --auth MODE        hmac-sha256 (default) or none
  --state FILE       state file for sequence numbers (default .esp-e2ee-sim.json)
  --prefix HEX       first three bytes of the device ids (default 5CCF7F)
  --duration S       stop after S seconds (default: run until Ctrl-C)
  --quiet            log only errors`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:1880' },
      devices: { type: 'string', default: '1' },
      interval: { type: 'string', default: '5' },
      key: { type: 'string' },
      auth: { type: 'string', default: 'hmac-sha256' },
      state: { type: 'string', default: '.esp-e2ee-sim.json' },
      prefix: { type: 'string', default: '5CCF7F' },
      duration: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const keyHex = values.key ?? process.env.E2EE_KEY;
  if (!keyHex) throw new Error('no key: pass --key or set E2EE_KEY (the hex key `npm start` printed or stored in its data dir)');
  const key = parseKey('hex', keyHex, values.auth);
  const count = Number(values.devices);
  const interval = Number(values.interval);
  if (!Number.isInteger(count) || count < 1 || count > 100000) throw new Error('--devices must be a positive integer');
  if (!(interval > 0)) throw new Error('--interval must be a positive number of seconds');
  if (!/^[0-9A-Fa-f]{6}$/.test(values.prefix)) throw new Error('--prefix must be 6 hex digits');
  const state = new StateFile(values.state);
  const log = values.quiet ? undefined : (line: string) => console.log(line);
  const prefix = values.prefix.toUpperCase().match(/../g)!.join(':');
  const devices: SimDevice[] = [];
  for (let i = 0; i < count; i++) {
    const suffix = i.toString(16).toUpperCase().padStart(6, '0').match(/../g)!.join(':');
    const device = new SimDevice({ id: `${prefix}:${suffix}`, baseUrl: values.url.replace(/\/$/, ''), key, state, interval, log });
    await device.listen();
    const r = await device.register();
    if (r.status !== 200 && r.status !== 201) throw new Error(`register ${device.id}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    device.run();
    devices.push(device);
  }
  console.log(`${devices.length} simulated device(s) running against ${values.url}`);
  const stop = async () => {
    await Promise.all(devices.map((d) => d.stop()));
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (values.duration) setTimeout(stop, Number(values.duration) * 1000);
}

main().catch((err: Error) => {
  console.error(`esp-e2ee-sim: ${err.message}`);
  process.exit(1);
});
