'use strict';
/**
 * The layers of nodes/lib hold (docs/architecture.md): no import goes up or sideways, none reaches into another
 * layer past its index, none leaves the library; outside it, only the library's index is imported. And no function
 * in nodes/ or app/ is over 60 lines. Each check is also run on a tree with a planted fault, so it can fail.
 */
require('should');
const fs = require('node:fs');
const path = require('node:path');
const { layersFromDoc, importViolations, longFunctions } = require('../support/architecture');
const { tempDir } = require('../support/tmp');

const root = path.resolve(__dirname, '..', '..');
const doc = path.join(root, 'docs', 'architecture.md');
const MAX_FUNCTION_LINES = 60;

/** A copy of the TypeScript sources (nodes/, app/, sim/) and the doc, to plant faults in. */
function copyTree(dir) {
  for (const sub of ['nodes', 'app', 'sim']) {
    if (fs.existsSync(path.join(root, sub))) fs.cpSync(path.join(root, sub), path.join(dir, sub), { recursive: true, filter: (p) => !p.includes('node_modules') });
  }
  fs.mkdirSync(path.join(dir, 'docs'));
  fs.copyFileSync(doc, path.join(dir, 'docs', 'architecture.md'));
  return dir;
}

function plant(dir, file, line) {
  const p = path.join(dir, file);
  fs.writeFileSync(p, `${line}\n${fs.readFileSync(p, 'utf8')}`);
}

describe('architecture (docs/architecture.md)', function () {
  let tmp;
  let layers;
  before(function () {
    tmp = tempDir();
    layers = layersFromDoc(doc);
  });
  after(() => tmp.cleanup());

  it('the doc names every folder of nodes/lib as a layer, in an order where each imports only layers above it', function () {
    const folders = fs.readdirSync(path.join(root, 'nodes', 'lib'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    folders.sort().should.eql([...layers.keys()].sort());
    for (const folder of folders) fs.existsSync(path.join(root, 'nodes', 'lib', folder, 'index.ts')).should.be.true(`${folder}/index.ts`);
  });

  it('no import in the tree breaks the layers', function () {
    importViolations(root, layers).should.eql([]);
  });

  it('an upward, a sideways, a past-the-index and a Node-RED import are each caught', function () {
    const dir = copyTree(tmp.file('planted'));
    plant(dir, 'nodes/lib/crypto/aes.ts', "import { parseEnvelope } from '../wire';");
    plant(dir, 'nodes/lib/http/routes.ts', "import { runAction } from '../api';");
    plant(dir, 'nodes/lib/api/actions.ts', "import { SqliteStore } from '../store/sqlite';");
    plant(dir, 'nodes/lib/registry/rules.ts', "import * as RED from 'node-red';");
    plant(dir, 'nodes/aes-key/aes-key.ts', "import { aesCbcEncrypt } from '../lib/crypto/aes';");
    const found = importViolations(dir, layersFromDoc(path.join(dir, 'docs', 'architecture.md')));
    found.should.have.length(5);
    found[0].should.match(/api\/actions\.ts:1 .*name the layer \(store\/\)/);
    found.join('\n').should.match(/crypto\/aes\.ts:1 .*crypto\/ may not import wire\//);
    found.join('\n').should.match(/http\/routes\.ts:1 .*http\/ may not import api\//);
    found.join('\n').should.match(/registry\/rules\.ts:1 .*never imports Node-RED/);
    found.join('\n').should.match(/aes-key\.ts:1 .*import nodes\/lib \(its index\) only/);
  });

  it('a table that lets a layer import one below it (upward) is refused', function () {
    const dir = copyTree(tmp.file('doc'));
    const file = path.join(dir, 'docs', 'architecture.md');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('| `crypto/` | common |', '| `crypto/` | common, wire |'));
    (() => layersFromDoc(file)).should.throw(/crypto\/ may import wire\/, which is not a layer listed above it/);
  });

  it(`no function in nodes/ or app/ is over ${MAX_FUNCTION_LINES} lines`, function () {
    longFunctions(root, ['nodes', 'app'], MAX_FUNCTION_LINES).should.eql([]);
    const dir = copyTree(tmp.file('long'));
    plant(dir, 'nodes/lib/common/errors.ts', `export function tooLong(): number {\n${'  let a = 1;\n'.repeat(MAX_FUNCTION_LINES)}  return 1;\n}`);
    longFunctions(dir, ['nodes'], MAX_FUNCTION_LINES).should.eql([`nodes/lib/common/errors.ts:1 tooLong: ${MAX_FUNCTION_LINES + 3} lines`]);
  });
});
