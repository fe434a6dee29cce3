#!/usr/bin/env node
/** `npm run cluster`: builds when needed, then runs the instances behind HAProxy (app/cluster). */
'use strict';
require('./build').buildIfNeeded();
require('../dist/app/cluster').run();
