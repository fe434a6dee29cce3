'use strict';
require('should');
const fs = require('node:fs');
const path = require('node:path');
const { useRuntimeWithTempDir, helper, nodes, redVersion } = require('../support/red');

const root = path.resolve(__dirname, '..', '..');
const examples = fs.readdirSync(path.join(root, 'examples'), { recursive: true }).filter((f) => f.endsWith('.json')).map((f) => path.join('examples', f));
const shipped = [...examples, path.join('flows', 'esp-e2ee.json')];
// Properties that are meant to hold another node's id.
// (group, ui, page, theme: FlowFuse Dashboard's widgets and config nodes.)
const REFERENCE_PROPS = new Set(['id', 'z', 'g', 'key', 'store', 'wires', 'scope', 'links', 'broker', 'group', 'ui', 'page', 'theme']);
const nrNodes = path.dirname(require.resolve('@node-red/nodes/package.json', { paths: [path.dirname(require.resolve(process.env.E2EE_NODE_RED ? path.resolve(process.env.E2EE_NODE_RED) : 'node-red'))] }));
const core = ['common/20-inject.js', 'common/21-debug.js', 'common/90-comment.js', 'common/60-link.js', 'function/10-function.js', 'function/10-switch.js', 'function/15-change.js', 'network/21-httpin.js', 'network/21-httprequest.js', 'network/10-mqtt.js']
  .map((f) => require(path.join(nrNodes, 'core', f)));
// FlowFuse Dashboard 2.0 (a devDependency), for the dashboard example.
const dashboardDir = path.dirname(require.resolve('@flowfuse/node-red-dashboard/package.json'));
const dashboard = Object.values(require(path.join(dashboardDir, 'package.json'))['node-red'].nodes).map((f) => require(path.join(dashboardDir, f)));

describe('examples and the shipped flow on Node-RED ' + redVersion(), function () {
  this.timeout(20000);
  const dir = useRuntimeWithTempDir();

  it('there is an example for every node of the package', function () {
    const types = Object.keys(require(path.join(root, 'package.json'))['node-red'].nodes);
    for (const type of types) examples.some((f) => f.startsWith(path.join('examples', type) + path.sep)).should.be.true(type);
  });

  for (const file of shipped) {
    describe(file, function () {
      const flow = JSON.parse(fs.readFileSync(path.join(root, file), 'utf8'));
      const ids = new Set(flow.map((n) => n.id));

      it('explains itself in a comment node and carries no key or token', function () {
        flow.some((n) => n.type === 'comment' && n.info && n.info.length > 40).should.be.true();
        for (const n of flow) {
          n.should.not.have.property('credentials');
          if (n.type === 'aes-key') n.should.not.have.property('key');
          if (n.type === 'device-store') n.should.not.have.property('token');
        }
      });

      it('wires and references point at nodes that exist, and no other property looks like a node id', function () {
        for (const n of flow) {
          for (const out of n.wires || []) for (const target of out) ids.has(target).should.be.true(`${n.id} -> ${target}`);
          for (const [prop, value] of Object.entries(n)) {
            // Node-RED treats any string property equal to a node id as a reference to it.
            if (!REFERENCE_PROPS.has(prop) && typeof value === 'string') ids.has(value).should.be.false(`${n.id}.${prop} = ${value}`);
          }
          if (n.key !== undefined && n.type !== 'aes-key') flow.find((k) => k.id === n.key).type.should.equal('aes-key');
          if (n.store !== undefined) flow.find((k) => k.id === n.store).type.should.equal('device-store');
          if (n.broker !== undefined && n.type !== 'mqtt-broker') flow.find((k) => k.id === n.broker).type.should.equal('mqtt-broker');
        }
      });

      it('deploys on a real runtime: every node starts', async function () {
        const deployable = flow.map((n) => (n.type === 'device-store' ? { ...n, path: path.join(dir().dir, 'example.sqlite') } : n));
        // The helper registers its own catch node once per catch node in the flow, which fails from the
        // second on; register it once per load instead.
        const catchModule = helper._nodeModules.catch;
        let registered = false;
        helper._nodeModules.catch = (red) => (registered ? undefined : ((registered = true), catchModule(red)));
        try {
          await helper.load([...core, ...dashboard, ...Object.values(nodes)], deployable);
        } finally {
          helper._nodeModules.catch = catchModule;
        }
        for (const n of flow) if (n.type !== 'tab' && n.type !== 'group') (helper.getNode(n.id) !== null).should.be.true(`${n.type} ${n.id} did not start`);
      });
    });
  }
});
