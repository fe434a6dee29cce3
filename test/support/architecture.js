/**
 * The architecture's checks, on the TypeScript sources (read with the TypeScript compiler's parser, so every form of
 * import counts: import and export-from declarations, import(), require()):
 * - layersFromDoc: the layer table of docs/architecture.md (layer -> the layers it may import);
 * - importViolations: every import in nodes/lib that the table does not allow, that names a file inside another
 *   layer instead of its index, or that leaves the library; and every import of the library from nodes/, app/ or
 *   sim/ that does not go through nodes/lib's index;
 * - longFunctions: functions over a line limit (data tables are not functions, so they do not count).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

function tsFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

function parse(file) {
  return ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
}

/** Every module specifier the file imports, with its line. */
function importsOf(file) {
  const source = parse(file);
  const found = [];
  const add = (literal) => found.push({ spec: literal.text, line: source.getLineAndCharacterOfPosition(literal.getStart()).line + 1 });
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) add(node.moduleSpecifier);
    if (ts.isCallExpression(node) && node.arguments.length > 0 && ts.isStringLiteralLike(node.arguments[0])) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) add(node.arguments[0]);
    }
    if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      add(node.moduleReference.expression);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The layer table: `| \`name/\` | a, b | ... |` rows after the "may import" header. */
function layersFromDoc(docFile) {
  const text = fs.readFileSync(docFile, 'utf8');
  const start = text.indexOf('| layer | may import |');
  if (start < 0) throw new Error(`${docFile} has no layer table`);
  const layers = new Map();
  for (const line of text.slice(start).split('\n').slice(2)) {
    const m = /^\| `([a-z0-9-]+)\/` \|([^|]*)\|/.exec(line);
    if (!m) break;
    const allowed = m[2].split(',').map((s) => s.trim()).filter(Boolean);
    for (const a of allowed) {
      // Only layers listed before it: an import can then never go up or sideways.
      if (!layers.has(a)) throw new Error(`docs/architecture.md: ${m[1]}/ may import ${a}/, which is not a layer listed above it`);
    }
    layers.set(m[1], new Set(allowed));
  }
  return layers;
}

/** The import violations of the tree under `root` (nodes/lib, nodes/<type>, app/, sim/). */
function importViolations(root, layers) {
  const lib = path.join(root, 'nodes', 'lib');
  const violations = [];
  const rel = (f) => path.relative(root, f);
  const resolveSpec = (file, spec) => path.resolve(path.dirname(file), spec);
  for (const file of tsFiles(lib)) {
    const from = path.relative(lib, file).split(path.sep);
    const layer = from.length > 1 ? from[0] : null; // null: nodes/lib/index.ts, the face of every layer
    if (layer !== null && !layers.has(layer)) violations.push(`${rel(file)}: folder ${layer}/ is not a layer of docs/architecture.md`);
    for (const { spec, line } of importsOf(file)) {
      const where = `${rel(file)}:${line} imports '${spec}'`;
      if (spec === 'node-red' || spec.startsWith('@node-red/')) {
        violations.push(`${where}: the library never imports Node-RED`);
        continue;
      }
      if (!spec.startsWith('.')) continue; // node: builtins and packages
      const target = path.relative(lib, resolveSpec(file, spec)).split(path.sep);
      if (target[0] === '..') {
        violations.push(`${where}: it leaves nodes/lib`);
        continue;
      }
      if (layer === null) {
        if (target.length !== 1) violations.push(`${where}: the library's face imports layers by their folder`);
        continue;
      }
      const targetLayer = target[0];
      if (targetLayer === layer) continue;
      if (target.length > 1 && !(target.length === 2 && target[1] === 'index')) violations.push(`${where}: name the layer (${targetLayer}/), not a file inside it`);
      if (!layers.get(layer).has(targetLayer)) violations.push(`${where}: ${layer}/ may not import ${targetLayer}/ (docs/architecture.md)`);
    }
  }
  const outside = [...tsFiles(path.join(root, 'nodes')).filter((f) => !f.startsWith(lib + path.sep)), ...tsFiles(path.join(root, 'app')), ...tsFiles(path.join(root, 'sim'))];
  for (const file of outside) {
    for (const { spec, line } of importsOf(file)) {
      if (!spec.startsWith('.')) continue;
      const target = path.relative(lib, resolveSpec(file, spec));
      if (target === '' || target === 'index') continue;
      if (!target.startsWith('..')) violations.push(`${rel(file)}:${line} imports '${spec}': outside the library, import nodes/lib (its index) only`);
    }
  }
  return violations;
}

/** Functions (declarations, methods, arrows, function expressions) longer than maxLines, under the given dirs. */
function longFunctions(root, dirs, maxLines) {
  const long = [];
  for (const file of dirs.flatMap((d) => tsFiles(path.join(root, d)))) {
    const source = parse(file);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && node.body) {
        const first = source.getLineAndCharacterOfPosition(node.getStart()).line;
        const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
        const lines = last - first + 1;
        if (lines > maxLines) {
          const name = node.name && ts.isIdentifier(node.name) ? node.name.text : ts.isVariableDeclaration(node.parent) && ts.isIdentifier(node.parent.name) ? node.parent.name.text : '(anonymous)';
          long.push(`${path.relative(root, file)}:${first + 1} ${name}: ${lines} lines`);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return long;
}

module.exports = { layersFromDoc, importViolations, longFunctions, importsOf };
