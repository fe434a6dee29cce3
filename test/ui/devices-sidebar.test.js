'use strict';
const should = require('should');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { startBackend } = require('../support/backend');
const { launch } = require('../support/browser');
const { tempDir } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');
const { requestJson } = require('../../dist/nodes/sim/device');

const artifacts = path.resolve(__dirname, '..', '..', 'test-artifacts');
const HOSTILE = '<script>window.__xss=1</script><img src=x onerror=__xss=2>';

const onNodeRed = process.env.E2EE_BACKEND_NODE_RED ? `Node-RED ${require(require('node:path').resolve(process.env.E2EE_BACKEND_NODE_RED, 'package.json')).version}` : 'Node-RED 4';
describe(`Devices sidebar in the editor of ${onNodeRed} (real chromium)`, function () {
  this.timeout(180000);
  let tmp;
  let backend;
  let chrome;
  let page;
  const KEY = crypto.randomBytes(16).toString('hex');
  const TOKEN = crypto.randomBytes(12).toString('hex');
  const key = lib.parseKey('hex', KEY, 'hmac-sha256');
  const devices = ['5C:CF:7F:0A:00:01', '5C:CF:7F:0A:00:02', '5C:CF:7F:0A:00:03'];
  const tag = process.env.E2EE_BACKEND_NODE_RED ? 'nr5-' : '';
  const shot = (name) => page.screenshot({ path: path.join(artifacts, `devices-sidebar-${tag}${name}.png`) });
  const op = (method, suffix, body) => requestJson(`${backend.url}/api/devices${suffix}`, method, body, { authorization: `Bearer ${TOKEN}` });

  before(async function () {
    fs.mkdirSync(artifacts, { recursive: true });
    tmp = tempDir('esp-e2ee-ui-');
    backend = await startBackend({ dataDir: tmp.dir, env: { E2EE_KEY: KEY, E2EE_ADMIN_TOKEN: TOKEN, E2EE_LOG_LEVEL: 'warn' } });
    for (const [i, id] of devices.entries()) {
      (await requestJson(`${backend.url}/api/devices/${id}`, 'POST', { ipaddr: `192.0.2.${i + 10}`, ssid: i === 2 ? '<b>ssid</b>' : 'lab' })).status.should.equal(201);
    }
    (await op('PUT', `/${devices[0]}`, { name: 'greenhouse', data: { interval: 30 } })).status.should.equal(200);
    (await op('PUT', `/${devices[2]}`, { name: HOSTILE })).status.should.equal(200);
    for (let seqn = 1; seqn <= 12; seqn++) {
      const body = lib.encryptToWire(key, Buffer.from(JSON.stringify({ data: { a0: 400 + seqn * 10, heap: 30000 - seqn }, SEQN: seqn })), devices[0]);
      (await requestJson(`${backend.url}/api/devices/${devices[0]}/readings`, 'POST', body)).status.should.equal(200);
    }
    chrome = await launch();
    page = await chrome.newPage();
    page.on('dialog', (dialog) => dialog.accept());
  });

  after(async function () {
    if (chrome) await chrome.close();
    if (backend) await backend.stop();
    if (tmp) tmp.cleanup();
  });

  it('1. opens the editor (after the login) and the Devices tab', async function () {
    await page.goto(`${backend.url}/admin/`);
    await page.fill('#node-dialog-login-username', 'admin');
    await page.fill('#node-dialog-login-password', TOKEN);
    await page.click('#node-dialog-login-submit');
    // The editor shows its workspace once the flows are loaded.
    await page.waitForSelector('#red-ui-sidebar', { state: 'visible', timeout: 60000 });
    await page.waitForFunction(() => window.RED && RED.sidebar && document.querySelector('.esp-e2ee-devices'), null, { timeout: 30000 });
    // Node-RED 4 shows sidebar tabs as tabs; Node-RED 5 as buttons and View-menu entries. While the editor
    // is still settling it may switch back to its default tab, so open ours until it stays open.
    const tab = page.locator('#red-ui-tab-esp-e2ee-devices a').first();
    const button = page.locator('button[data-tab-id="esp-e2ee-devices"]');
    let sawTab = false;
    for (let attempt = 0; attempt < 20 && !(await page.locator('.esp-e2ee-devices').isVisible()); attempt++) {
      if ((await tab.count()) > 0 && (await tab.isVisible())) {
        sawTab = true;
        await tab.click();
      } else if ((await button.count()) > 0 && (await button.isVisible())) {
        await button.click();
      } else {
        await page.evaluate(() => RED.sidebar.show('esp-e2ee-devices'));
      }
      await page.waitForTimeout(500);
    }
    if (sawTab) (await page.locator('#red-ui-tab-esp-e2ee-devices').innerText()).should.match(/Devices/);
    await page.waitForSelector('.esp-e2ee-devices .esp-e2ee-row', { timeout: 30000 });
    await shot('1-tab');
  });

  it('2. lists the seeded devices with their status', async function () {
    const ids = await page.locator('.esp-e2ee-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-deviceid')));
    ids.should.eql(devices);
    (await page.locator('.esp-e2ee-online').count()).should.equal(3);
    (await page.locator('.esp-e2ee-page').innerText()).should.match(/1.3 of 3/);
    // Filter, then sort by name descending.
    await page.fill('.esp-e2ee-search', 'greenh');
    await page.waitForFunction(() => document.querySelectorAll('.esp-e2ee-row').length === 1);
    await page.fill('.esp-e2ee-search', '');
    await page.waitForFunction(() => document.querySelectorAll('.esp-e2ee-row').length === 3);
  });

  it('3. renames a device', async function () {
    await page.click(`.esp-e2ee-row[data-deviceid="${devices[1]}"]`);
    await page.waitForSelector('.esp-e2ee-panel .esp-e2ee-rename');
    await page.fill('.esp-e2ee-rename', 'workshop');
    await page.click('.esp-e2ee-rename-save');
    await page.waitForFunction((id) => {
      const row = document.querySelector(`.esp-e2ee-row[data-deviceid="${id}"] .esp-e2ee-name`);
      return row && row.textContent === 'workshop';
    }, devices[1]);
    (await op('GET', '')).body.find((d) => d.deviceid === devices[1]).name.should.equal('workshop');
    await shot('3-renamed');
  });

  it('4. changes a config property, and cfgsn goes up in the device API', async function () {
    const before = (await requestJson(`${backend.url}/api/devices/${devices[0]}`, 'GET')).body.cfgsn;
    await page.click(`.esp-e2ee-row[data-deviceid="${devices[0]}"]`);
    await page.waitForFunction(() => document.querySelector('.esp-e2ee-panel-title').textContent === '5C:CF:7F:0A:00:01');
    const value = page.locator('.esp-e2ee-config-row .esp-e2ee-config-value').first();
    (await page.locator('.esp-e2ee-config-row .esp-e2ee-config-key').first().inputValue()).should.equal('interval');
    await value.fill('10');
    await page.click('.esp-e2ee-add-row');
    await page.locator('.esp-e2ee-config-row .esp-e2ee-config-key').last().fill('led');
    await page.locator('.esp-e2ee-config-row .esp-e2ee-config-value').last().fill('true');
    await page.click('.esp-e2ee-save-config');
    const poll = async () => (await requestJson(`${backend.url}/api/devices/${devices[0]}`, 'GET')).body;
    let after = await poll();
    for (let i = 0; i < 50 && after.cfgsn === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await poll();
    }
    after.cfgsn.should.equal(before + 1);
    after.data.should.eql({ interval: 10, led: true });
    await shot('4-config');
  });

  it('5. shows the readings chart of a numeric field', async function () {
    await page.waitForSelector('.esp-e2ee-chart svg polyline.esp-e2ee-line');
    const fields = await page.locator('.esp-e2ee-field option').allInnerTexts();
    fields.should.containDeep(['a0', 'heap']);
    await page.selectOption('.esp-e2ee-field', 'a0');
    const points = await page.locator('.esp-e2ee-chart polyline').getAttribute('points');
    points.trim().split(' ').length.should.equal(12);
    (await page.locator('.esp-e2ee-reading').count()).should.equal(12);
    await page.locator('.esp-e2ee-panel').screenshot({ path: path.join(artifacts, `devices-sidebar-${tag}5-chart.png`) });
  });

  it('6. shows a device name containing <script> as text, never as markup', async function () {
    const cellText = await page.locator(`.esp-e2ee-row[data-deviceid="${devices[2]}"] .esp-e2ee-name`).innerText();
    cellText.should.equal(HOSTILE);
    (await page.locator('.esp-e2ee-devices script').count()).should.equal(0);
    (await page.locator('.esp-e2ee-devices img').count()).should.equal(0);
    should(await page.evaluate(() => window.__xss)).be.undefined();
    (await page.locator(`.esp-e2ee-row[data-deviceid="${devices[2]}"] td`).nth(5).innerText()).should.equal('<b>ssid</b>');
    await page.click(`.esp-e2ee-row[data-deviceid="${devices[2]}"]`);
    (await page.locator('.esp-e2ee-rename').inputValue()).should.equal(HOSTILE);
    should(await page.evaluate(() => window.__xss)).be.undefined();
    await shot('6-hostile-name');
  });

  it('sends a command and resets the replay counter from the panel', async function () {
    await page.click(`.esp-e2ee-row[data-deviceid="${devices[0]}"]`);
    await page.fill('.esp-e2ee-command', '{"led": false}');
    await page.click('.esp-e2ee-send');
    let commands = [];
    for (let i = 0; i < 50 && commands.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      commands = (await requestJson(`${backend.url}/api/devices/${devices[0]}`, 'GET')).body.commands;
    }
    commands.length.should.equal(1);
    JSON.parse(lib.decryptEnvelope(key, lib.parseEnvelope(commands[0]), devices[0]).toString()).should.eql({ cmd: { led: false }, SEQN: 1 });
    await page.click('.esp-e2ee-reset');
    const replay = lib.encryptToWire(key, Buffer.from(JSON.stringify({ data: { a0: 1 }, SEQN: 1 })), devices[0]);
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await requestJson(`${backend.url}/api/devices/${devices[0]}/readings`, 'POST', replay)).status;
    }
    status.should.equal(200);
  });
});
