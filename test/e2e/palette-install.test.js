'use strict';
/**
 * Installing the package the way Node-RED's palette manager does: `npm pack` of a clean checkout (prepack
 * builds dist/), `npm install <tarball>` into a fresh user directory, then a stock Node-RED (4 and 5) started
 * on that directory. No devDependency is reachable from there: the user directory is outside this repository.
 */
require('should');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { execFileSync, spawn } = require('node:child_process');
const { tempDir } = require('../support/tmp');
const { freePort } = require('../support/backend');
const lib = require('../../dist/nodes/lib');
const { registerSealed } = require('../support/device');
const { requestJson } = require('../../dist/sim/device');

const root = path.resolve(__dirname, '..', '..');
const pkg = require(path.join(root, 'package.json'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A POST of any text, for bodies that are not JSON. */
function rawPost(url, text, type) {
  return new Promise((resolve, reject) => {
    const req = require('node:http').request(url, { method: 'POST', headers: { 'content-type': type } }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, text: body }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

const runtimes = [
  { name: 'Node-RED 4', node: process.execPath, red: require.resolve('node-red/red.js', { paths: [root] }) },
  { name: 'Node-RED 5', node: path.join(root, 'test/nr5/node_modules/.bin/node'), red: path.join(root, 'test/nr5/node_modules/node-red/red.js') },
];

/** Starts `node red.js --userDir dir` and waits until its admin API answers. */
async function startNodeRed(runtime, userDir) {
  const port = await freePort();
  fs.writeFileSync(path.join(userDir, 'settings.js'), `module.exports = ${JSON.stringify({
    uiHost: '127.0.0.1',
    uiPort: port,
    // The editor under its own root, as the README advises: at `/` its JSON parser would see device bodies first.
    httpAdminRoot: '/admin',
    flowFile: 'flows.json',
    credentialSecret: 'palette-install-test',
    editorTheme: { palette: { catalogues: [] }, tours: false },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
    logging: { console: { level: 'info', metrics: false, audit: false } },
  }, null, 2)};\n`);
  const child = spawn(runtime.node, [runtime.red, '--userDir', userDir, '--settings', path.join(userDir, 'settings.js')], {
    cwd: userDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' },
  });
  let output = '';
  child.stdout.on('data', (c) => { output += c; });
  child.stderr.on('data', (c) => { output += c; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`${runtime.name} exited:\n${output}`);
    try {
      if ((await requestJson(`${url}/admin/settings`, 'GET')).status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 300) throw new Error(`${runtime.name} did not start:\n${output}`);
    await sleep(200);
  }
  return {
    url,
    get output() { return output; },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('palette install: npm pack of a clean checkout, npm install <tgz>, a stock Node-RED', function () {
  this.timeout(600000);
  let tmp;
  let userDir;

  before(function () {
    for (const r of runtimes) fs.existsSync(r.red).should.be.true(`${r.red} (test/run-all.sh installs Node-RED 5 under test/nr5)`);
    tmp = tempDir('esp-e2ee-palette-');
    // A clean checkout: the tracked files only (no dist/), with this repository's node_modules for the build tools.
    const checkout = path.join(tmp.dir, 'checkout');
    for (const file of execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean)) {
      if (!fs.existsSync(path.join(root, file))) continue; // deleted in the work tree
      fs.mkdirSync(path.dirname(path.join(checkout, file)), { recursive: true });
      fs.copyFileSync(path.join(root, file), path.join(checkout, file));
    }
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(checkout, 'node_modules'), 'dir');
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp.dir], { cwd: checkout, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    // The prepack build prints its own lines before npm's JSON.
    const packed = JSON.parse(out.slice(out.search(/^\[/m)));
    const tarball = path.join(tmp.dir, packed[0].filename);
    const files = packed[0].files.map((f) => f.path);
    for (const p of Object.values(pkg['node-red'].nodes).concat(Object.values(pkg['node-red'].plugins), [pkg.main, pkg.bin['esp-e2ee-sim'], 'examples/backend/esp-e2ee-backend.json'])) {
      files.should.containEql(p);
    }
    files.some((f) => f.startsWith('test/') || f.startsWith('firmware/') || f.startsWith('nodes/')).should.be.false();

    // The palette manager's install: npm install <tarball> in the user directory (production dependencies only).
    userDir = path.join(tmp.dir, 'userdir');
    fs.mkdirSync(userDir);
    fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true, version: '0.0.1' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: userDir, stdio: 'inherit' });
    // (By path. A dev dependency may be there only when a package of the installed tree needs it: mqtt, a production
    // dependency, brings mqtt-packet, which the hostile-broker test uses directly, and type declarations.)
    const modules = path.join(userDir, 'node_modules');
    const needed = new Set();
    for (const entry of fs.readdirSync(modules)) {
      const dirs = entry.startsWith('@') ? fs.readdirSync(path.join(modules, entry)).map((d) => path.join(entry, d)) : [entry];
      for (const dir of dirs) {
        const file = path.join(modules, dir, 'package.json');
        if (dir === 'node-red-contrib-esp-e2ee' || !fs.existsSync(file)) continue;
        for (const dep of Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')).dependencies ?? {})) needed.add(dep);
      }
    }
    for (const dev of Object.keys(pkg.devDependencies)) {
      if (fs.existsSync(path.join(modules, dev))) needed.has(dev).should.be.true(`${dev} (a dev dependency) is installed, and nothing installed needs it`);
    }
  });

  after(function () {
    if (tmp) tmp.cleanup();
  });

  for (const runtime of runtimes) {
    it(`${runtime.name}: every node type and the plugin register, the examples are listed, the backend flow imports, deploys and serves`, async function () {
      // A fresh start for each runtime: no flows, no database.
      for (const f of fs.readdirSync(userDir)) if (/^(flows(_cred)?\.json|esp-e2ee\.sqlite.*)$/.test(f)) fs.rmSync(path.join(userDir, f));
      const red = await startNodeRed(runtime, userDir);
      try {
        const json = { accept: 'application/json' };
        const nodeSets = (await requestJson(`${red.url}/admin/nodes`, 'GET', undefined, json)).body.filter((s) => s.module === pkg.name);
        const types = nodeSets.flatMap((s) => s.types);
        types.sort().should.eql(Object.keys(pkg['node-red'].nodes).sort());
        for (const set of nodeSets) {
          set.enabled.should.be.true();
          (set.err === undefined).should.be.true(`${set.id}: ${set.err}`);
        }
        const plugins = (await requestJson(`${red.url}/admin/plugins`, 'GET', undefined, json)).body.filter((s) => s.module === pkg.name);
        plugins.flatMap((s) => s.plugins.map((p) => p.id)).should.containEql('esp-e2ee-devices');

        // Import > Examples: the package's folder, one per node plus the whole backend.
        const listing = (await requestJson(`${red.url}/admin/library/examples/flows/${pkg.name}`, 'GET', undefined, json)).body;
        const folders = listing.filter((e) => typeof e === 'string');
        folders.should.containDeep(['backend', ...Object.keys(pkg['node-red'].nodes)]);
        const backend = await requestJson(`${red.url}/admin/library/examples/flows/${pkg.name}/backend/esp-e2ee-backend`, 'GET', undefined, json);
        backend.status.should.equal(200);
        backend.body.should.eql(JSON.parse(fs.readFileSync(path.join(root, 'flows', 'esp-e2ee.json'), 'utf8')));

        // Deploy it as an import does, with the key and the token entered in the config nodes.
        const keyHex = crypto.randomBytes(16).toString('hex');
        const token = crypto.randomBytes(12).toString('hex');
        const flow = backend.body.map((n) => {
          if (n.type === 'aes-key') return { ...n, credentials: { key: keyHex } };
          if (n.type === 'device-store') return { ...n, credentials: { token } };
          return n;
        });
        const deploy = await requestJson(`${red.url}/admin/flows`, 'POST', flow, { 'node-red-deployment-type': 'full' });
        deploy.status.should.equal(204, JSON.stringify(deploy.body));
        const id = '5C:CF:7F:AB:CD:01';
        const keyNode = flow.find((n) => n.type === 'aes-key');
        // The shipped flow's key is a master: each device has its own key, derived from it.
        keyNode.scope.should.equal('per-device');
        const key = new lib.DeviceKeyring(Buffer.from(keyHex, 'hex'), keyNode.auth).material(id);
        let registered;
        for (let i = 0; i < 50; i++) {
          // A sealed registration (uplink SEQN 0), as the firmware sends it.
          registered = await registerSealed(red.url, key, id);
          if (registered.status !== 404) break;
          await sleep(100);
        }
        registered.status.should.equal(201, red.output);
        const reading = lib.encryptToWire(key, Buffer.from(JSON.stringify({ data: { a0: 1 }, SEQN: 1 })), id);
        (await requestJson(`${red.url}/api/devices/${id}/readings`, 'POST', reading)).status.should.equal(200);
        (await requestJson(`${red.url}/api/devices/${id}/readings`, 'POST', reading)).status.should.equal(400);
        // A body that is not JSON gets the same 400 as any rejected reading, as under npm start (the package
        // reads the readings route's body itself; Node-RED's own parser would answer 500).
        for (const [body, type] of [['garbage', 'text/plain'], ['{"iv": "broken', 'application/json']]) {
          const r = await rawPost(`${red.url}/api/devices/${id}/readings`, body, type);
          r.status.should.equal(400, `${type} ${body}`);
          JSON.parse(r.text).should.eql({ status: 'NOK', message: 'Rejected' });
        }
        const stored = await requestJson(`${red.url}/api/devices/${id}/readings`, 'GET', undefined, { authorization: `Bearer ${token}` });
        stored.body.map((r) => r.seqn).should.eql([1]);
        red.output.should.not.match(/\[error\]/);
      } finally {
        await red.stop();
      }
    });
  }
});
