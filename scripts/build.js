#!/usr/bin/env node
// Compiles nodes/**/*.ts to dist/ and puts each node's editor html, message
// catalog, help and icons next to its compiled js. The shared catalog
// (nodes/shared/locales) is merged into every node's catalog under "e2ee", so
// the common error texts exist once in the source. The shipped backend flow is
// copied into examples/ (Import > Examples), generated so the two never drift.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const src = path.join(root, 'nodes');
const out = path.join(root, 'dist', 'nodes');

const sharedLocales = path.join(src, 'shared', 'locales');

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/**
 * Compiles and copies everything. `clean` (prepack): start from an empty dist/, so nothing removed from the sources
 * is packed. Not by default: `npm run sim` builds while `npm start` may be serving editor files from dist/.
 */
function build({ clean = false } = {}) {
  if (clean) fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', root], { stdio: 'inherit' });
  copyNodeAssets();
  // The simulator and the provisioning tool are executables (package.json bin).
  for (const bin of ['cli.js', 'keys.js']) fs.chmodSync(path.join(root, 'dist', 'sim', bin), 0o755);
  // The whole backend in Import > Examples (git-ignored copy of flows/esp-e2ee.json).
  const backendExample = path.join(root, 'examples', 'backend', 'esp-e2ee-backend.json');
  fs.mkdirSync(path.dirname(backendExample), { recursive: true });
  fs.copyFileSync(path.join(root, 'flows', 'esp-e2ee.json'), backendExample);
}

/** Each node's editor html, message catalog (with the shared one merged in), help and icons beside its js. */
function copyNodeAssets() {
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
  if (!entry.isDirectory() || ['lib', 'shared'].includes(entry.name)) continue;
  const nodeDir = path.join(src, entry.name);
  const outDir = path.join(out, entry.name);
  fs.mkdirSync(outDir, { recursive: true });
  for (const file of fs.readdirSync(nodeDir)) {
    if (file.endsWith('.html')) fs.copyFileSync(path.join(nodeDir, file), path.join(outDir, file));
  }
  if (fs.existsSync(path.join(nodeDir, 'icons'))) {
    fs.cpSync(path.join(nodeDir, 'icons'), path.join(outDir, 'icons'), { recursive: true });
  }
  const localesDir = path.join(nodeDir, 'locales');
  if (!fs.existsSync(localesDir)) continue;
  for (const lang of fs.readdirSync(localesDir)) {
    const langOut = path.join(outDir, 'locales', lang);
    fs.mkdirSync(langOut, { recursive: true });
    for (const file of fs.readdirSync(path.join(localesDir, lang))) {
      const from = path.join(localesDir, lang, file);
      if (!file.endsWith('.json')) {
        fs.copyFileSync(from, path.join(langOut, file));
        continue;
      }
      const catalog = readJson(from);
      const shared = path.join(sharedLocales, lang, 'common.json');
      if (fs.existsSync(shared)) catalog.e2ee = readJson(shared);
      fs.writeFileSync(path.join(langOut, file), JSON.stringify(catalog, null, 2) + '\n');
    }
  }
  }
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds when a source (nodes/, app/, sim/) is newer than what dist/ holds (npm start, npm run cluster). */
function buildIfNeeded() {
  const dist = path.join(root, 'dist');
  const built = ['nodes', 'app'].every((d) => fs.existsSync(path.join(dist, d))) ? newestMtime(dist) : 0;
  const sources = Math.max(...['nodes', 'app', 'sim'].map((d) => newestMtime(path.join(root, d))));
  if (built >= sources) return;
  console.log('Building the package...');
  build();
}

if (require.main === module) {
  build({ clean: process.argv.includes('--clean') });
  console.log('built', path.relative(root, out));
}

module.exports = { build, buildIfNeeded };
