#!/usr/bin/env node
/**
 * The backend of `npm start` (scripts/start.js, the shipped flow), with what the peer pipelines of
 * bench/http.js need beside it in the same runtime: node-red-node-sqlite in the user directory, and
 * crypto-js in the function nodes' global context (global.get('CryptoJS')), as users set it up in settings.js.
 */
'use strict';
const { main } = require('../../scripts/start');

main({ settings: { functionGlobalContext: { CryptoJS: require('crypto-js') } }, packages: ['node-red-node-sqlite'] }).catch((err) => {
  console.error(err);
  process.exit(1);
});
