'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** A fresh temp directory, removed by cleanup(). */
function tempDir(prefix = 'esp-e2ee-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, file: (name) => path.join(dir, name), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Reads a SQLite file with a separate connection, as an outside observer would. */
function querySqlite(file, sql, params = []) {
  const sqlite3 = require('sqlite3');
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, sqlite3.OPEN_READONLY, (err) => {
      if (err) return reject(err);
      db.all(sql, params, (err2, rows) => db.close(() => (err2 ? reject(err2) : resolve(rows))));
    });
  });
}

module.exports = { tempDir, querySqlite };
