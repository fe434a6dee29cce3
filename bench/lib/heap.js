'use strict';
/**
 * The live heap of another Node process, from a heap snapshot it writes on a signal (started with
 * --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR): its total size and the constructors that hold most of it.
 */
const fs = require('node:fs');
const path = require('node:path');

/** Asks the process for a snapshot and waits until the file is complete; resolves with its path. */
async function takeSnapshot(pid, dir, timeoutMs = 120000) {
  const before = new Set(fs.readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  const end = Date.now() + timeoutMs;
  for (;;) {
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (file) {
      // Written in one go; complete once it parses as JSON (it ends with the strings table's "]}").
      const full = path.join(dir, file);
      const size = fs.statSync(full).size;
      await new Promise((r) => setTimeout(r, 500));
      if (size > 0 && fs.statSync(full).size === size && fs.readFileSync(full, 'utf8').trimEnd().endsWith('}')) return full;
    }
    if (Date.now() > end) throw new Error('no heap snapshot written');
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Total self size (MB) of the snapshot's nodes, and the largest holders by constructor or type (MB, count). */
function summarize(file, top = 8) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const meta = snap.snapshot.meta;
  const width = meta.node_fields.length;
  const typeAt = meta.node_fields.indexOf('type');
  const nameAt = meta.node_fields.indexOf('name');
  const sizeAt = meta.node_fields.indexOf('self_size');
  const types = meta.node_types[0];
  const by = new Map();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const size = snap.nodes[i + sizeAt];
    total += size;
    const type = types[snap.nodes[i + typeAt]];
    const key = type === 'object' || type === 'closure' ? `${type} ${snap.strings[snap.nodes[i + nameAt]]}` : type;
    const e = by.get(key) ?? { bytes: 0, count: 0 };
    e.bytes += size;
    e.count++;
    by.set(key, e);
  }
  const holders = [...by].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top).map(([name, e]) => ({ name, mb: e.bytes / 1048576, count: e.count }));
  return { mb: total / 1048576, holders };
}

module.exports = { takeSnapshot, summarize };
