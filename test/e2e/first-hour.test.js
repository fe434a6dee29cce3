'use strict';
/** A newcomer's first hour: the start banner, a port clash, and the simulator that says what it does. */
require('should');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { startBackend, freePort } = require('../support/backend');
const { tempDir } = require('../support/tmp');
const { reachableAddresses } = require('../../dist/app/start');
const { defaultStateFile } = require('../../dist/sim/state');

const root = path.resolve(__dirname, '..', '..');
const cli = path.join(root, 'dist', 'sim', 'cli.js');

/** Runs a command to its end; resolves with its exit code and output. */
function run(cmd, args, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('first hour: start banner, port clash, a simulator that talks', function () {
  this.timeout(180000);

  it('a port already in use: one clear line naming PORT, before any flow starts', async function () {
    const tmp = tempDir('esp-e2ee-clash-');
    const port = await freePort();
    const squatter = net.createServer().listen(port, '127.0.0.1');
    await new Promise((r) => squatter.once('listening', r));
    // The next port is taken too: the suggestion must be one that is really free.
    const neighbour = net.createServer().listen(port + 1, '127.0.0.1');
    await new Promise((r) => { neighbour.once('listening', r); neighbour.once('error', r); });
    try {
      const r = await run(process.execPath, [path.join(root, 'scripts', 'start.js')], { env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', E2EE_MQTT_PORT: String(await freePort()), E2EE_DATA_DIR: tmp.dir } });
      r.code.should.equal(2);
      r.stderr.trim().split('\n').should.have.length(1);
      r.stderr.should.match(new RegExp(`^Port ${port} is already in use .*set PORT to a free port`));
      r.stderr.should.not.match(/\n\s+at /);
      (r.stdout + r.stderr).should.not.match(/Started flows|Starting flows/);
      const suggested = Number(/PORT=(\d+) npm start \(free just now\)/.exec(r.stderr)[1]);
      suggested.should.be.above(port + 1);
      const probe = net.createServer().listen(suggested, '127.0.0.1');
      await new Promise((resolve, reject) => { probe.once('listening', resolve); probe.once('error', reject); });
      probe.close();
    } finally {
      neighbour.close();
      squatter.close();
      tmp.cleanup();
    }
  });

  it('on a terminal, the generated token is shown once, and the master key never (devices get their own keys)', async function () {
    const tmp = tempDir('esp-e2ee-tty-');
    const port = await freePort();
    const adminPort = await freePort();
    // util-linux `script` gives the server a pseudo-terminal as its stdout.
    const child = spawn('script', ['-qefc', `${process.execPath} ${path.join(root, 'scripts', 'start.js')}`, '/dev/null'], {
      cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORT: String(port), E2EE_ADMIN_PORT: String(adminPort), E2EE_MQTT_PORT: String(await freePort()), HOST: '127.0.0.1', E2EE_DATA_DIR: tmp.dir, E2EE_LOG_LEVEL: 'warn' },
    });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    try {
      for (let i = 0; i < 600 && !out.includes('esp-e2ee backend ready'); i++) await new Promise((r) => setTimeout(r, 100));
      out.should.containEql('esp-e2ee backend ready');
      const keyHex = fs.readFileSync(path.join(tmp.dir, 'aes-key.hex'), 'utf8').trim();
      const token = fs.readFileSync(path.join(tmp.dir, 'admin-token'), 'utf8').trim();
      out.split(keyHex).length.should.equal(1);
      out.should.containEql(`npx esp-e2ee-keys <device id> --url http://127.0.0.1:${port} --data "${tmp.dir}" --out firmware/include/secrets.h`);
      out.split(token).length.should.equal(2);
      out.should.not.match(/not printed here/);
    } finally {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      await new Promise((r) => { if (child.exitCode !== null) r(); else child.on('exit', r); });
      tmp.cleanup();
    }
  });

  it('HOST=0.0.0.0: the banner offers the machine\'s own addresses, not 0.0.0.0 (no loopback, no link-local)', function () {
    const interfaces = {
      lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }, { address: '::1', family: 'IPv6', internal: true }],
      eth0: [{ address: '192.168.1.23', family: 'IPv4', internal: false }, { address: 'fe80::1', family: 'IPv6', internal: false }, { address: '2001:db8::23', family: 'IPv6', internal: false }],
      wlan0: [{ address: '10.0.0.7', family: 4, internal: false }],
    };
    reachableAddresses('0.0.0.0', interfaces).should.eql(['192.168.1.23', '10.0.0.7']);
    reachableAddresses('::', interfaces).should.eql(['192.168.1.23', '10.0.0.7', '[2001:db8::23]']);
    reachableAddresses('0.0.0.0', { lo: interfaces.lo }).should.eql([]);
  });

  it('the simulator state goes to the data dir or the user state dir, never the working tree', function () {
    defaultStateFile('/srv/data', {}).should.equal(path.join('/srv/data', 'sim-state.json'));
    defaultStateFile(undefined, { XDG_STATE_HOME: '/home/u/.state' }).should.equal(path.join('/home/u/.state', 'esp-e2ee-sim', 'state.json'));
    defaultStateFile(undefined, {}).should.endWith(path.join('.local', 'state', 'esp-e2ee-sim', 'state.json'));
  });

  describe('against npm start', function () {
    let tmp;
    let backend;
    before(async function () {
      tmp = tempDir('esp-e2ee-first-hour-');
      backend = await startBackend({ dataDir: tmp.dir });
    });
    after(async function () {
      if (backend) await backend.stop();
      if (tmp) tmp.cleanup();
    });

    it('the banner prints the simulator command for this port and data dir', function () {
      backend.output.should.containEql(`npm run sim -- --url ${backend.url} --data ${JSON.stringify(tmp.dir)}`);
    });

    it('the simulator reports each interval and sums up at the end; its state lands in the data dir', async function () {
      const before = fs.readdirSync(root);
      const r = await run(process.execPath, [cli, '--url', backend.url, '--data', tmp.dir, '--devices', '3', '--interval', '0.5', '--duration', '2.2', '--quiet']);
      r.code.should.equal(0, r.stdout + r.stderr);
      const reports = r.stdout.split('\n').filter((l) => /^\S+.* sent \d+, accepted \d+, rejected \d+, commands \d+$/.test(l) && !l.startsWith('summary'));
      reports.length.should.be.aboveOrEqual(2, r.stdout);
      for (const line of reports) line.should.match(/rejected 0, commands 0$/);
      const summary = /^summary after \d+ s, 3 device\(s\): sent (\d+), accepted (\d+), rejected 0, commands 0$/m.exec(r.stdout);
      (summary !== null).should.be.true(r.stdout);
      Number(summary[2]).should.equal(Number(summary[1]));
      Number(summary[2]).should.be.aboveOrEqual(6);
      fs.existsSync(path.join(tmp.dir, 'sim-state.json')).should.be.true();
      fs.readdirSync(root).should.eql(before);
    });

    for (const transport of ['http', 'mqtt']) {
      it(`--sleep over ${transport}: battery devices wake and send one reading each, answered with the sealed config`, async function () {
        const state = path.join(tmp.dir, `sleep-${transport}.json`);
        const args = [cli, '--url', backend.url, '--data', tmp.dir, '--state', state, '--devices', '2', '--sleep', '1', '--duration', '3.4', '--prefix', transport === 'http' ? 'AA0001' : 'AA0002'];
        if (transport === 'mqtt') args.push('--transport', 'mqtt', '--broker', `mqtt://127.0.0.1:${backend.mqttPort}`);
        const r = await run(process.execPath, args);
        r.code.should.equal(0, r.stdout + r.stderr);
        const summary = /^summary after \d+ s, 2 device\(s\): sent (\d+), accepted (\d+), rejected 0, commands 0$/m.exec(r.stdout);
        (summary !== null).should.be.true(r.stdout);
        Number(summary[2]).should.equal(Number(summary[1]));
        Number(summary[2]).should.be.aboveOrEqual(4);
        // Each wake applied the config its reading's answer brought (registration, then the readings' answers).
        r.stdout.should.match(/config 1: interval 1s/);
        r.stdout.should.not.match(/config answer refused/);
      });
    }

    it('--sleep with plain mode is refused in one sentence', async function () {
      const r = await run(process.execPath, [cli, '--url', backend.url, '--data', tmp.dir, '--auth', 'none', '--sleep', '60', '--duration', '1']);
      r.code.should.equal(1);
      r.stderr.should.match(/--sleep needs --auth hmac-sha256/);
    });

    it('with the wrong key it names the rejections and exits non-zero', async function () {
      const r = await run(process.execPath, [cli, '--url', backend.url, '--key', '00112233445566778899aabbccddeeff', '--state', path.join(tmp.dir, 'wrong.json'), '--devices', '1', '--interval', '0.5', '--duration', '1.2', '--quiet']);
      r.code.should.equal(1);
      // The sealed registration is the first thing refused, and the message says what to check.
      r.stderr.should.match(/registration of 5C:CF:7F:00:00:00 refused \(HTTP 400\): the key does not match the backend's/);
    });

    it('with a backend that is not there it says so in one line', async function () {
      const port = await freePort();
      const r = await run(process.execPath, [cli, '--url', `http://127.0.0.1:${port}`, '--data', tmp.dir, '--duration', '1']);
      r.code.should.equal(1);
      r.stderr.should.match(/cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): is the backend running/);
    });
  });
});

describe('first hour: the simulator when the backend goes away', function () {
  this.timeout(60000);
  it('backs off (the wait doubles) instead of hammering, and counts connection errors apart from rejections', async function () {
    const tmp = tempDir('esp-e2ee-sim-backoff-');
    const backend = await startBackend({ dataDir: tmp.dir });
    try {
      const child = spawn(process.execPath, [cli, '--url', backend.url, '--data', tmp.dir, '--devices', '3', '--interval', '0.5', '--duration', '9'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c) => { out += c; });
      child.stderr.on('data', (c) => { out += c; });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      for (let i = 0; i < 100 && !/accepted [1-9]/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
      out.should.match(/accepted [1-9]/);
      // Gone at once (a graceful stop would answer 404 for a moment, while its flows stop before its listener).
      await backend.kill();
      const stoppedAt = out.length;
      (await exited).should.equal(0, out);
      const after = out.slice(stoppedAt);
      // Connection errors are not rejections: the reports say unreachable, and rejected stays 0.
      after.should.match(/unreachable \d+ \(ECONNREFUSED: \d+\)/);
      for (const line of after.split('\n').filter((l) => / sent \d+, accepted /.test(l))) line.should.match(/rejected 0,/);
      // At 0.5 s a device would try ~16 times in the ~8 s left; with the wait doubling (1, 2, 4, 8 s) at most 5.
      const unreachable = [...after.matchAll(/unreachable (\d+) \(/g)].map((m) => Number(m[1]));
      const summary = /^summary after .*unreachable (\d+)/m.exec(after);
      (summary !== null).should.be.true(after);
      Number(summary[1]).should.be.belowOrEqual(3 * 5);
      unreachable.length.should.be.above(0);
      // One line per device when it starts and one per doubling, not one per try.
      const lines = after.split('\n').filter((l) => /backend unreachable/.test(l));
      lines.length.should.be.belowOrEqual(3 * 3);
      lines.length.should.be.aboveOrEqual(3);
    } finally {
      await backend.stop();
      tmp.cleanup();
    }
  });
});
