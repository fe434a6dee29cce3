#!/usr/bin/env node
/**
 * The chart of docs/benchmarks.md: each HTTP pipeline's throughput as a ratio to bare HTTP in the same
 * runtime, as bars (SVG, no library), from bench/results.json.
 *
 * Usage: node bench/chart.js [results.json] [out.svg]
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function chartSvg(report) {
  const rows = Object.entries(report.results.http.rows);
  const W = 860, BAR = 26, GAP = 12, LEFT = 400, RIGHT = 70, TOP = 46;
  const H = TOP + rows.length * (BAR + GAP) + 40;
  const max = Math.max(1.1, ...rows.map(([, r]) => r.ratioToBare));
  const x = (v) => LEFT + (v / max) * (W - LEFT - RIGHT);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="13">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Readings per second as a ratio to bare HTTP (same runtime, medians)</text>`,
  ];
  for (const t of [0, 0.2, 0.4, 0.6, 0.8, 1.0]) {
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${TOP - 6}" y2="${H - 30}" stroke="#ddd"/>`, `<text x="${x(t)}" y="${H - 14}" text-anchor="middle" fill="#666">${t.toFixed(1)}</text>`);
  }
  parts.push(`<line x1="${x(0.8)}" x2="${x(0.8)}" y1="${TOP - 10}" y2="${H - 30}" stroke="#c33" stroke-dasharray="4 3"/>`, `<text x="${x(0.8) + 4}" y="${TOP - 12}" fill="#c33" font-size="11">goal 0.8</text>`);
  rows.forEach(([name, r], i) => {
    const y = TOP + i * (BAR + GAP);
    const ours = name.startsWith('readings');
    const fill = name === 'bare' ? '#999' : ours ? '#4a90d9' : '#e0a040';
    parts.push(
      `<text x="${LEFT - 8}" y="${y + BAR / 2 + 4}" text-anchor="end">${esc(name)}</text>`,
      `<rect x="${LEFT}" y="${y}" width="${Math.max(1, x(r.ratioToBare) - LEFT)}" height="${BAR}" fill="${fill}"/>`,
      `<text x="${x(r.ratioToBare) + 6}" y="${y + BAR / 2 + 4}">${r.ratioToBare.toFixed(2)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function writeChart(report, file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, chartSvg(report));
}

if (require.main === module) {
  const input = process.argv[2] || path.join(__dirname, 'results.json');
  const out = process.argv[3] || path.join(__dirname, '..', 'docs', 'benchmarks.svg');
  writeChart(JSON.parse(fs.readFileSync(input, 'utf8')), out);
  console.log(`wrote ${out}`);
}

module.exports = { chartSvg, writeChart };
