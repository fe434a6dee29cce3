'use strict';
/**
 * The tests' PostgreSQL: a throwaway server in a temporary directory, on a private loopback port, removed afterwards
 * (scripts/postgres.js, the same launcher `npm run cluster` uses). Nothing is skipped when PostgreSQL is missing.
 */
module.exports = require('../../scripts/postgres');
