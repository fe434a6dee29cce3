'use strict';
/**
 * The tests' PostgreSQL: a throwaway server in a temporary directory, on a private loopback port, removed afterwards
 * (app/postgres.ts, the same server `npm run cluster` uses). Nothing is skipped when PostgreSQL is missing.
 */
module.exports = require('../../dist/app/postgres');
