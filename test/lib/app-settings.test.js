'use strict';
/**
 * npm start's settings (app/settings.ts): the README's variable table is checked against the one typed table, so a
 * variable is documented once; and readSettings names every bad variable at once.
 */
require('should');
const fs = require('node:fs');
const path = require('node:path');
const { VARIABLES, readSettings, SettingsError } = require('../../dist/app/settings');

const root = path.resolve(__dirname, '..', '..');

/** The rows of the README table under `| variable | default | meaning |`: [name, default]. */
function readmeVariables() {
  const text = fs.readFileSync(path.join(root, 'docs', 'operations.md'), 'utf8');
  const start = text.indexOf('| variable | default | meaning |');
  start.should.be.above(-1);
  const rows = [];
  for (const line of text.slice(start).split('\n').slice(2)) {
    const m = /^\| `([A-Z0-9_]+)` \| ([^|]*) \|/.exec(line);
    if (!m) break;
    rows.push([m[1], m[2].trim()]);
  }
  return rows;
}

describe('app settings (app/settings.ts)', function () {
  it('the README variable table lists exactly the variables of app/settings.ts, with their defaults, in order', function () {
    readmeVariables().should.eql(VARIABLES.map((v) => [v.name, v.shown]));
  });

  it('the defaults', function () {
    const s = readSettings({}, '/srv/e2ee');
    s.should.containDeep({ port: 1880, host: '127.0.0.1', adminPort: 1881, adminHost: '127.0.0.1', dataDir: '/srv/e2ee/data', userDir: '/srv/e2ee/data/node-red', auth: 'hmac-sha256', editor: true, retention: '90d', commandTtl: '', logLevel: 'info', databaseUrl: '', dbPool: '' });
    (s.trustProxy === undefined).should.be.true();
  });

  it('values from the environment', function () {
    const s = readSettings({ PORT: '8080', HOST: '0.0.0.0', E2EE_EDITOR: 'off', E2EE_RETENTION: '', E2EE_TRUST_PROXY: '2', E2EE_MAX_DEVICES: '50', E2EE_DATABASE_URL: ' postgres://h/db ' }, '/r');
    s.should.containDeep({ port: 8080, host: '0.0.0.0', editor: false, retention: '', trustProxy: 2, maxDevices: 50, databaseUrl: 'postgres://h/db' });
    readSettings({ E2EE_TRUST_PROXY: 'loopback' }, '/r').trustProxy.should.equal('loopback');
  });

  it('every bad variable is named at once', function () {
    let err;
    try {
      readSettings({ PORT: 'http', E2EE_ADMIN_PORT: '70000', E2EE_AUTH: 'hmac' }, '/r');
    } catch (e) {
      err = e;
    }
    err.should.be.instanceOf(SettingsError);
    err.message.split('\n').sort().should.eql([
      'E2EE_ADMIN_PORT must be a port number (0 to 65535), not "70000"',
      'E2EE_AUTH must be hmac-sha256 or none, not "hmac"',
      'PORT must be a port number (0 to 65535), not "http"',
    ]);
  });
});
