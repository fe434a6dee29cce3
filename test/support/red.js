'use strict';
/**
 * Test harness around node-red-node-test-helper. E2EE_NODE_RED selects the
 * Node-RED runtime (a path to its red.js), so the same node tests run on
 * Node-RED 4 (this package's devDependency) and Node-RED 5 (test/nr5).
 */
const path = require('node:path');
const helper = require('node-red-node-test-helper');

const redPath = process.env.E2EE_NODE_RED ? path.resolve(process.env.E2EE_NODE_RED) : require.resolve('node-red');
helper.init(redPath);

const dist = path.resolve(__dirname, '..', '..', 'dist', 'nodes');
const nodes = {
  aesKey: require(path.join(dist, 'aes-key', 'aes-key.js')),
  aesEncrypt: require(path.join(dist, 'aes-encrypt', 'aes-encrypt.js')),
  aesDecrypt: require(path.join(dist, 'aes-decrypt', 'aes-decrypt.js')),
  deviceStore: require(path.join(dist, 'device-store', 'device-store.js')),
  replayGuard: require(path.join(dist, 'replay-guard', 'replay-guard.js')),
  deviceRegistry: require(path.join(dist, 'device-registry', 'device-registry.js')),
  deviceEvents: require(path.join(dist, 'device-events', 'device-events.js')),
};

/**
 * Resolves once `count` messages in total have arrived on the helper nodes
 * `ids`, with the messages per id; rejects when they do not arrive in time or
 * when `errorFrom` reports an error.
 */
function collect(ids, count, { timeoutMs = 5000, errorFrom } = {}) {
  const got = Object.fromEntries(ids.map((id) => [id, []]));
  let total = 0;
  const listeners = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(reject, new Error(`only ${total} of ${count} messages arrived`)), timeoutMs);
    function finish(fn, value) {
      clearTimeout(timer);
      for (const [node, event, fnl] of listeners) node.removeListener(event, fnl);
      fn(value);
    }
    for (const id of ids) {
      const node = helper.getNode(id);
      const onInput = (msg) => {
        got[id].push(msg);
        if (++total === count) finish(resolve, got);
      };
      node.on('input', onInput);
      listeners.push([node, 'input', onInput]);
    }
    if (errorFrom) {
      const node = helper.getNode(errorFrom);
      const onError = (call) => finish(reject, new Error(String(call.args[0] && call.args[0].message || call.args[0])));
      node.on('call:error', onError);
      listeners.push([node, 'call:error', onError]);
    }
  });
}

/** A deep copy of test/fixtures/flows/<name>.json with some node properties overridden by id. */
function fixtureFlow(name, overrides = {}) {
  const flow = JSON.parse(JSON.stringify(require(path.join(__dirname, '..', 'fixtures', 'flows', `${name}.json`))));
  for (const [id, props] of Object.entries(overrides)) {
    const node = flow.find((n) => n.id === id);
    if (!node) throw new Error(`fixture ${name} has no node ${id}`);
    Object.assign(node, props);
  }
  return flow;
}

/**
 * The test helper's RED._ returns the catalog key unchanged. To assert on
 * what a user reads, tests translate keys through the built catalogs.
 */
function catalogText(key) {
  const fs = require('node:fs');
  for (const dir of fs.readdirSync(dist)) {
    const file = path.join(dist, dir, 'locales', 'en-US', `${dir}.json`);
    if (!fs.existsSync(file)) continue;
    const text = key.split('.').reduce((obj, part) => (obj && typeof obj === 'object' ? obj[part] : undefined), JSON.parse(fs.readFileSync(file, 'utf8')));
    if (typeof text === 'string') return text;
  }
  throw new Error(`no catalog text for ${key}`);
}

function redVersion() {
  const v = helper._RED.version;
  return typeof v === 'function' ? v.call(helper._RED) : v;
}

/**
 * Sends msg into node `inputId` and resolves with the first of: a message on
 * helper node `outputId` ({msg}) or an error reported by the node ({error}).
 * Rejects when neither happens in time, so a silent node fails the test.
 */
function exchange(inputId, outputId, msg, timeoutMs = 2000) {
  const input = helper.getNode(inputId);
  const output = helper.getNode(outputId);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(reject, new Error(`no output and no error from ${inputId}`)), timeoutMs);
    function finish(fn, value) {
      clearTimeout(timer);
      output.removeListener('input', onInput);
      input.removeListener('call:error', onError);
      fn(value);
    }
    function onInput(out) { finish(resolve, { msg: out }); }
    function onError(call) { finish(resolve, { error: call.args[0] }); }
    output.on('input', onInput);
    input.on('call:error', onError);
    input.receive(msg);
  });
}

/**
 * Sends msg and expects an error and no output: it waits a little after the
 * error so that a message sent anyway would be caught.
 */
async function expectRejected(inputId, outputId, msg) {
  const output = helper.getNode(outputId);
  let leaked = null;
  const onInput = (m) => { leaked = m; };
  output.on('input', onInput);
  try {
    const result = await exchange(inputId, outputId, msg);
    await new Promise((r) => setTimeout(r, 20));
    if (result.msg || leaked) throw new Error(`expected a rejection, got output ${JSON.stringify((result.msg || leaked).payload)}`);
    const raw = String(result.error && result.error.message !== undefined ? result.error.message : result.error);
    // Under the helper, RED._ returns the key; show the text a user would read.
    return /^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(raw) ? catalogText(raw) : raw;
  } finally {
    output.removeListener('input', onInput);
  }
}

/**
 * The hooks of a suite that runs nodes on the helper's runtime with a fresh
 * temp dir per test: server up once, flow unloaded and dir removed after each
 * test. Returns a getter for the current test's temp dir.
 */
function useRuntimeWithTempDir() {
  const { tempDir } = require('./tmp');
  let tmp;
  before(function (done) { helper.startServer(done); });
  after(function (done) { helper.stopServer(done); });
  beforeEach(() => { tmp = tempDir(); });
  afterEach(async () => {
    await helper.unload();
    tmp.cleanup();
  });
  return () => tmp;
}

module.exports = { useRuntimeWithTempDir, collect, helper, nodes, fixtureFlow, exchange, expectRejected, redVersion, catalogText };
