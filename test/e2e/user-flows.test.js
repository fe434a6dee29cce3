'use strict';
/**
 * Readings into users' own flows, as the README walks a user through it: `npm start`, the examples imported next to
 * the backend tab (deployed through the admin API, the way the editor's Deploy does), the simulator, and then what
 * arrives: the debug sidebar's messages (read from the editor's comms websocket), the Home Assistant topics on a real
 * Mosquitto, and the FlowFuse Dashboard page in chromium, whose command button reaches the device.
 */
require('should');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const WebSocket = require('ws');
const mqtt = require('mqtt');
const { startBackend } = require('../support/backend');
const { startMosquitto } = require('../support/mosquitto');
const { launch } = require('../support/browser');
const { tempDir } = require('../support/tmp');
const { until } = require('../support/wait');

const root = path.resolve(__dirname, '..', '..');
const cli = path.join(root, 'dist', 'sim', 'cli.js');
const example = (name) => JSON.parse(fs.readFileSync(path.join(root, 'examples', 'device-events', name), 'utf8'));
const artifacts = path.join(root, 'test-artifacts');

describe('readings and events in users\' flows: the examples on npm start', function () {
  this.timeout(180000);
  const TOKEN = crypto.randomBytes(12).toString('hex');
  let tmp;
  let backend;
  let broker;
  let access;
  let comms;
  const debug = [];

  const admin = async (method, url, body, headers = {}) => {
    const res = await fetch(`${backend.adminUrl}${url}`, {
      method,
      headers: { authorization: `Bearer ${access}`, 'content-type': 'application/json', 'Node-RED-API-Version': 'v2', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const api = async (method, url, body) => {
    const res = await fetch(`${backend.url}${url}`, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const sim = (args) => new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, '--url', backend.url, '--data', tmp.dir, '--quiet', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    child.on('exit', (code) => resolve({ code, out }));
  });
  const from = (id) => debug.filter((d) => d.id === id).map((d) => JSON.parse(d.msg));

  before(async function () {
    tmp = tempDir('esp-e2ee-user-flows-');
    broker = await startMosquitto(fs.mkdtempSync(path.join(tmp.dir, 'mosq-')), { open: true, keyHex: '00'.repeat(16) });
    backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_ADMIN_TOKEN: TOKEN } });
    const form = new URLSearchParams({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: TOKEN });
    const res = await fetch(`${backend.adminUrl}/auth/token`, { method: 'POST', body: form });
    res.status.should.equal(200);
    access = (await res.json()).access_token;
    // The three examples, imported beside the backend tab; the Home Assistant broker is the test's Mosquitto.
    const { flows, rev } = await admin('GET', '/flows');
    const ha = example('readings-to-home-assistant.json').map((n) => (n.type === 'mqtt-broker' ? { ...n, broker: '127.0.0.1', port: String(broker.port) } : n));
    const added = [...example('readings-to-debug.json'), ...example('readings-to-dashboard.json'), ...ha];
    await admin('POST', '/flows', { flows: [...flows, ...added], rev }, { 'Node-RED-Deployment-Type': 'full' });
    // The Debug sidebar's feed, as the editor gets it.
    comms = new WebSocket(`${backend.adminUrl.replace('http', 'ws')}/comms`);
    await new Promise((resolve, reject) => {
      comms.on('error', reject);
      comms.on('open', () => comms.send(JSON.stringify({ auth: access })));
      comms.on('message', (raw) => {
        const parsed = JSON.parse(String(raw));
        for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
          if (m.auth === 'ok') {
            comms.send(JSON.stringify({ subscribe: 'debug' }));
            resolve();
          }
          if (m.topic === 'debug') debug.push(m.data);
        }
      });
    });
  });

  after(async function () {
    if (comms) comms.close();
    if (backend) await backend.stop();
    if (broker) await broker.stop();
    if (tmp) tmp.cleanup();
  });

  it('the backend tab has the two link out nodes, in labelled groups that cover every node', async function () {
    const { flows } = await admin('GET', '/flows');
    const tab = flows.filter((n) => n.z === 'e2ee-tab');
    tab.filter((n) => n.type === 'link out').map((n) => n.name).sort().should.eql(['esp-e2ee events', 'esp-e2ee readings']);
    const groups = tab.filter((n) => n.type === 'group');
    groups.length.should.be.aboveOrEqual(8);
    for (const g of groups) g.name.should.not.be.empty();
    for (const n of tab) if (n.type !== 'group') (n.g !== undefined).should.be.true(`${n.type} ${n.id} is in no group`);
    // Top to bottom: no two groups overlap.
    const sorted = groups.slice().sort((a, b) => a.y - b.y);
    for (let i = 1; i < sorted.length; i++) sorted[i].y.should.be.aboveOrEqual(sorted[i - 1].y + sorted[i - 1].h);
  });

  it('readings reach the debug example (one device through its filter) and the events say registered and online', async function () {
    const r = await sim(['--devices', '2', '--interval', '0.5', '--duration', '2.6']);
    r.code.should.equal(0, r.out);
    await until('readings in the debug sidebar', () => from('ex-debug-all').length >= 6 && from('ex-debug-one').length >= 3);
    const all = from('ex-debug-all');
    for (const m of all) {
      m.should.have.properties(['deviceid', 'name', 'seqn', 'data', 'ts', 'transport']);
      m.transport.should.equal('http');
      m.data.should.have.properties(['a0', 'heap', 'uptime']);
      m.data.should.not.have.property('SEQN');
      Number.isInteger(m.seqn).should.be.true();
    }
    new Set(all.map((m) => m.deviceid)).should.eql(new Set(['5C:CF:7F:00:00:00', '5C:CF:7F:00:00:01']));
    // The filter passes one device, and shows its values (payload.data).
    for (const v of from('ex-debug-one')) v.should.have.properties(['a0', 'heap', 'uptime']);
    from('ex-debug-one').length.should.equal(all.filter((m) => m.deviceid === '5C:CF:7F:00:00:01').length);
    const events = from('ex-debug-events');
    for (const id of ['5C:CF:7F:00:00:00', '5C:CF:7F:00:00:01']) {
      events.some((e) => e.event === 'registered' && e.deviceid === id && e.created === true).should.be.true(JSON.stringify(events));
      events.filter((e) => e.event === 'online' && e.deviceid === id).length.should.equal(1);
    }
    // Nothing secret rides along.
    JSON.stringify(debug).should.not.containEql(TOKEN);
  });

  it('the Home Assistant example publishes a retained discovery config per value and plain JSON state', async function () {
    const client = mqtt.connect(broker.url, { reconnectPeriod: 0 });
    const got = new Map();
    await new Promise((resolve, reject) => { client.once('connect', resolve); client.once('error', reject); });
    client.on('message', (topic, payload, packet) => got.set(topic, { body: JSON.parse(String(payload)), retain: packet.retain }));
    await new Promise((resolve) => client.subscribe(['homeassistant/#', 'esp-e2ee/+/state'], resolve));
    try {
      const r = await sim(['--devices', '2', '--interval', '0.5', '--duration', '1.2']);
      r.code.should.equal(0, r.out);
      await until('discovery and state', () => got.has('homeassistant/sensor/5ccf7f000001_a0/config') && got.has('esp-e2ee/5ccf7f000001/state'), 10000);
      const config = got.get('homeassistant/sensor/5ccf7f000001_a0/config');
      config.retain.should.be.true();
      config.body.should.containDeep({ state_topic: 'esp-e2ee/5ccf7f000001/state', value_template: '{{ value_json.a0 }}', device: { identifiers: ['esp_e2ee_5ccf7f000001'] } });
      got.has('homeassistant/sensor/5ccf7f000001_uptime/config').should.be.true();
      got.get('homeassistant/sensor/5ccf7f000001_uptime/config').body.unit_of_measurement.should.equal('s');
      got.get('esp-e2ee/5ccf7f000001/state').body.should.have.properties(['a0', 'heap', 'uptime', 'seqn', 'received']);
    } finally {
      client.end(true);
    }
  });

  it('the dashboard shows the chart and the latest values, and its button sends a command the device acknowledges', async function () {
    const browser = await launch();
    try {
      const page = await browser.newPage();
      await page.goto(`${backend.url}/dashboard/devices`);
      // The page is live: readings from now on reach the chart and the table.
      await page.waitForSelector('.nrdb-ui-chart, [class*="nrdb-ui-chart"]', { timeout: 30000 });
      const running = sim(['--devices', '2', '--interval', '0.5', '--duration', '12']);
      await page.waitForFunction(() => document.querySelectorAll('table tbody tr').length >= 2, null, { timeout: 20000 });
      const table = await page.locator('table').first().innerText();
      table.should.match(/5C:CF:7F:00:00:00/);
      table.should.match(/5C:CF:7F:00:00:01/);
      table.should.match(/a0/);
      // The chart drew something (ECharts renders into a canvas).
      (await page.locator('.nrdb-ui-chart canvas, [class*="nrdb-ui-chart"] canvas').count()).should.be.above(0);
      // Choose the second device and press "LED on".
      await page.locator('.nrdb-ui-dropdown, [class*="nrdb-ui-dropdown"]').first().click();
      await page.getByRole('option', { name: '5C:CF:7F:00:00:01' }).click();
      await page.getByRole('button', { name: 'LED on' }).click();
      await page.waitForFunction(() => /command \d+ queued for 5C:CF:7F:00:00:01/.test(document.body.innerText), null, { timeout: 10000 });
      fs.mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, 'dashboard-example.png'), fullPage: true });
      // The simulated device takes it and acknowledges it with a following reading.
      await until('the command acknowledged', async () => {
        const log = await api('GET', '/api/devices/5C:CF:7F:00:00:01/commands');
        return log.status === 200 && log.body.some((c) => c.state === 'acknowledged');
      }, 20000);
      await until('the acknowledged event', () => from('ex-debug-events').some((e) => e.event === 'acknowledged' && e.deviceid === '5C:CF:7F:00:00:01'), 10000);
      (await running).code.should.equal(0);
    } finally {
      await browser.close();
    }
  });
});
