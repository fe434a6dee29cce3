'use strict';
/**
 * firmware/README.md's provisioning step, word for word: the commands of its marked block are run as written, with
 * `npx`, from a directory laid out as the repository's root (the package's bin, firmware/include/ and the backend's
 * ./data), so the developer's own data and secrets.h are never touched. First before any backend ran (it must refuse
 * and leave no file), then after `npm start` wrote its device URL.
 */
require('should');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startBackend } = require('../support/backend');
const { tempDir } = require('../support/tmp');
const lib = require('../../dist/nodes/lib');

const root = path.resolve(__dirname, '..', '..');
const MARK = '<!-- provisioning: test/e2e/firmware-readme.test.js runs the commands of this block as they are written -->';

/** The shell lines of the marked code block. */
function provisioningCommands() {
  const text = fs.readFileSync(path.join(root, 'firmware', 'README.md'), 'utf8');
  const at = text.indexOf(MARK);
  at.should.be.above(-1, 'firmware/README.md has lost its marked provisioning block');
  const block = /```sh\n([\s\S]*?)```/.exec(text.slice(at));
  return block[1].split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

describe('firmware/README.md: the provisioning step works word for word', function () {
  this.timeout(120000);
  let tmp;
  let work;
  let backend;
  const run = (command) => spawnSync('bash', ['-c', command], { cwd: work, encoding: 'utf8', env: { ...process.env, E2EE_DATA_DIR: '', E2EE_KEY: '' } });

  before(function () {
    tmp = tempDir('esp-e2ee-fw-readme-');
    // The repository's root as the README means it: the package's own bin on npx's path, firmware/include/, ./data.
    work = tmp.file('repo');
    fs.mkdirSync(path.join(work, 'firmware', 'include'), { recursive: true });
    fs.mkdirSync(path.join(work, 'node_modules', '.bin'), { recursive: true });
    fs.writeFileSync(path.join(work, 'package.json'), JSON.stringify({ name: 'readme-check', private: true }));
    fs.symlinkSync(path.join(root, 'dist', 'sim', 'keys.js'), path.join(work, 'node_modules', '.bin', 'esp-e2ee-keys'));
  });
  after(async function () {
    if (backend) await backend.stop();
    if (tmp) tmp.cleanup();
  });

  it('has one esp-e2ee-keys command that writes firmware/include/secrets.h', function () {
    const commands = provisioningCommands();
    commands.length.should.equal(1);
    commands[0].should.match(/^npx esp-e2ee-keys \S+ --out firmware\/include\/secrets\.h$/);
  });

  it('before any backend ran: refuses in one line and leaves no secrets.h behind', function () {
    for (const command of provisioningCommands()) {
      const r = run(command);
      r.status.should.equal(2, r.stderr);
      r.stderr.should.match(/no master key|no --url/);
      fs.existsSync(path.join(work, 'firmware', 'include', 'secrets.h')).should.be.false();
    }
  });

  it('after npm start: the device\'s own key and the URL the banner printed, said on stderr, with the loopback warning', async function () {
    backend = await startBackend({ dataDir: path.join(work, 'data') });
    for (const command of provisioningCommands()) {
      const r = run(command);
      r.status.should.equal(0, r.stderr);
      const file = path.join(work, 'firmware', 'include', 'secrets.h');
      (fs.statSync(file).mode & 0o777).should.equal(0o600);
      const text = fs.readFileSync(file, 'utf8');
      const id = /npx esp-e2ee-keys (\S+)/.exec(command)[1];
      const master = Buffer.from(fs.readFileSync(path.join(work, 'data', 'aes-key.hex'), 'utf8').trim(), 'hex');
      text.should.containEql(`#define E2EE_DEVICE_ID "${id}"`);
      text.should.containEql(`#define E2EE_KEY_HEX "${lib.deriveDeviceKey(master, id, 0).toString('hex')}"`);
      text.should.containEql(`#define E2EE_BACKEND_URL "${backend.url}"`);
      text.should.not.containEql(master.toString('hex'));
      // The tests' backend listens on loopback only: exactly the case the warning is for.
      r.stderr.should.containEql(`secrets.h says ${backend.url}`);
      r.stderr.should.match(/warning: no ESP8266 can reach/);
      r.stdout.should.equal('');
    }
  });
});
