#!/usr/bin/env node
/**
 * The firmware's footprint: firmware/lib/e2ee cross-compiled for the ESP8266 (xtensa-lx106, -Os, the
 * Makefile's `xtensa` target) and linked from the entry points src/main.cpp calls; its code, its constants (mostly
 * the log sentences), data and bss, BearSSL excluded.
 *
 * Usage: node bench/firmware.js [--json]
 */
'use strict';
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { benchMain } = require('./lib/runtime');

async function run() {
  const out = execFileSync('make', ['-s', '-C', path.join(__dirname, '..', 'firmware'), 'xtensa'], { encoding: 'utf8' });
  const [text, data, bss] = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\w+\s+\S*lib\.o$/m.exec(out).slice(1).map(Number);
  const [code, constants] = /lib\/e2ee in the firmware: (\d+) bytes of code \+ (\d+) bytes of constants/.exec(out).slice(1).map(Number);
  const largest = /largest static object: (.*)/.exec(out)[1].trim();
  const [ramResident, flashTexts] = /lib\/e2ee RAM-resident: (\d+) bytes .*; log texts in flash: (\d+) bytes/.exec(out).slice(1).map(Number);
  return { text, code, constants, data, bss, ramResident, flashTexts, largestStatic: largest };
}

if (require.main === module) {
  benchMain(run, (r) => console.log(`firmware lib/e2ee on xtensa-lx106 -Os: text ${r.text} B (code ${r.code} B + constants ${r.constants} B), data ${r.data} B, bss ${r.bss} B; RAM-resident ${r.ramResident} B (log texts in flash: ${r.flashTexts} B); largest static object: ${r.largestStatic}`));
}

module.exports = { run };
