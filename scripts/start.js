#!/usr/bin/env node
/** `npm start`: builds the package when its sources are newer than dist/, then runs the backend (app/start.ts). */
'use strict';
require('./build').buildIfNeeded();
const app = require('../dist/app/start');

module.exports = app;
if (require.main === module) app.run();
