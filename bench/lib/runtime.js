'use strict';
/**
 * Starts a real, embedded Node-RED runtime (the same `node-red` package that
 * `npm start` runs) in this process, with this package and any extra node
 * packages installed into a temp userDir, and a given flow deployed. Benches
 * drive nodes with RED.nodes.getNode(id).receive(msg) and count what arrives.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');

const root = path.resolve(__dirname, '..', '..');

function linkPackage(userDir, name, dir) {
  const target = path.join(userDir, 'node_modules', name);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.symlinkSync(dir, target, 'dir');
}

/**
 * @param {object} options
 * @param {object[]} options.flow      flow JSON
 * @param {object} [options.credentials] credentials by node id
 * @param {string[]} [options.packages]  extra node packages (names resolvable from here)
 * @param {object} [options.settings]    extra Node-RED settings
 */
async function startRuntime({ flow, credentials = {}, packages = [], settings = {} }) {
  const RED = require(require.resolve('node-red', { paths: [root] }));
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'esp-e2ee-bench-'));
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'bench-userdir', private: true }));
  linkPackage(userDir, 'node-red-contrib-esp-e2ee', root);
  for (const name of packages) {
    linkPackage(userDir, name, path.dirname(require.resolve(`${name}/package.json`, { paths: [root] })));
  }
  // Written before start, as a user's flow file would be; credentialSecret
  // false keeps the credentials file plain JSON keyed by node id.
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flow));
  fs.writeFileSync(path.join(userDir, 'flows_cred.json'), JSON.stringify(credentials));
  const server = http.createServer();
  RED.init(server, {
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: '/',
    uiPort: 0,
    logging: { console: { level: process.env.BENCH_LOG || 'warn' } },
    editorTheme: { tours: false },
    ...settings,
  });
  await RED.start();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  // start() resolves before the flows are running: wait until every node exists.
  const ids = flow.filter((n) => n.type !== 'tab').map((n) => n.id);
  for (let waited = 0; ids.some((id) => !RED.nodes.getNode(id)); waited += 20) {
    if (waited > 10000) throw new Error(`nodes did not start: ${ids.filter((id) => !RED.nodes.getNode(id)).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    RED,
    port: server.address().port,
    getNode: (id) => RED.nodes.getNode(id),
    async stop() {
      await RED.stop();
      await new Promise((resolve) => server.close(resolve));
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}

/**
 * Pushes messages into node `inputId`, keeping at most `inFlight` between
 * input and node `sinkId` (default: all at once); resolves with msgs/s once
 * all arrived.
 */
function pump(runtime, inputId, sinkId, messages, inFlight = messages.length) {
  const input = runtime.getNode(inputId);
  const sink = runtime.getNode(sinkId);
  if (!input || !sink) throw new Error(`no node ${input ? sinkId : inputId}`);
  return new Promise((resolve) => {
    let received = 0;
    let sent = 0;
    const onInput = () => {
      if (sent < messages.length) input.receive(messages[sent++]);
      if (++received === messages.length) {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        sink.removeListener('input', onInput);
        resolve(messages.length / seconds);
      }
    };
    sink.on('input', onInput);
    const start = process.hrtime.bigint();
    while (sent < Math.min(inFlight, messages.length)) input.receive(messages[sent++]);
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toLocaleString('en-US');

/** A numeric --name value from the command line, or the fallback. */
function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

module.exports = { startRuntime, pump, median, fmt, arg };

/**
 * A benchmark's command line: runs `run()`, prints its report (`print(result)`), and with --json prints the
 * result as one `BENCH_RESULT <json>` line for bench/run.js. Exits (Node-RED runtimes keep handles open).
 */
function benchMain(run, print) {
  run().then(
    (result) => {
      if (process.argv.includes('--json')) console.log(`BENCH_RESULT ${JSON.stringify(result)}`);
      else print(result);
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}

module.exports.benchMain = benchMain;
