'use strict';
const { execFileSync } = require('node:child_process');
/** Runs the openssl CLI as an independent oracle. Its stderr (the EVP_BytesToKey deprecation notice) is dropped. */
function openssl(args, input) {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] });
}
module.exports = { openssl };
