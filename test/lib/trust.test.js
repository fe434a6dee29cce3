'use strict';
const should = require('should');
const lib = require('../../dist/nodes/lib');
const { tempDir } = require('../support/tmp');

// The trust model's rules in the library, on a real SQLite store: which key versions an uplink may use (checked
// before the replay window), promotion and revocation, acknowledgements, expiry, and the size of config answers.
describe('lib trust model: key versions, acknowledgements, expiry, config answers', function () {
  let tmp;
  let store;
  const t = lib.catalogTranslator({ e2ee: require('../../nodes/shared/locales/en-US/common.json') });
  const auth = { acknowledged: true, perDevice: true, rekey: true };
  beforeEach(async function () {
    tmp = tempDir('esp-e2ee-trust-lib-');
    store = new lib.SqliteStore({ file: tmp.file('t.sqlite') });
    await store.ready();
  });
  afterEach(async function () {
    await store.close();
    tmp.cleanup();
  });
  const admit = (id, seq, kv) => lib.admitUplink(store, id, seq, 0, 'before-send', kv);
  const act = (action, deviceid, body, extra = {}) => lib.runAction(store, { action, deviceid, body, heartbeatMs: 60000, deviceAuth: auth, ...extra }, t);

  it('accepts the current version and, during a rekey, the pending one; the first message under it retires the old', async function () {
    await store.register({ deviceid: 'd1', ipaddr: '10.0.0.1', ssid: 'x', keyver: 0 });
    (await admit('d1', 1, 0)).accepted.should.be.true();
    (await admit('d1', 2, 1)).should.eql({ accepted: false, reason: 'key-version' });
    (await store.beginRekey('d1')).should.eql({ keyver: 0, pending: 1 });
    // A second request keeps the version under way.
    (await store.beginRekey('d1')).should.eql({ keyver: 0, pending: 1 });
    (await admit('d1', 3, 0)).accepted.should.be.true();
    (await admit('d1', 4, 1)).accepted.should.be.true();
    (await store.get('d1')).should.containEql({ keyver: 1, pendingkeyver: null });
    (await admit('d1', 5, 0)).should.eql({ accepted: false, reason: 'key-version' });
  });

  it('a refused version does not move the replay counter; a replayed message under the pending version does not promote it', async function () {
    await store.register({ deviceid: 'd2', ipaddr: '10.0.0.1', ssid: 'x' });
    (await admit('d2', 10, 0)).accepted.should.be.true();
    (await admit('d2', 2 ** 53 - 1, 7)).reason.should.equal('key-version');
    (await admit('d2', 11, 0)).accepted.should.be.true();
    await store.beginRekey('d2');
    (await admit('d2', 11, 1)).reason.should.equal('replay');
    (await store.get('d2')).should.containEql({ keyver: 0, pendingkeyver: 1 });
  });

  it('removal revokes every version the device had or was moving to, across a restart; a higher one registers it again', async function () {
    await store.register({ deviceid: 'd3', ipaddr: '10.0.0.1', ssid: 'x' });
    await store.beginRekey('d3');
    (await store.remove('d3')).should.be.true();
    for (const kv of [0, 1]) (await admit('d3', 100 + kv, kv)).reason.should.equal('key-version');
    await store.close();
    store = new lib.SqliteStore({ file: tmp.file('t.sqlite') });
    await store.ready();
    (await store.keyFloor('d3')).should.equal(2);
    (await admit('d3', 200, 1)).reason.should.equal('key-version');
    (await admit('d3', 201, 2)).accepted.should.be.true();
    (await store.register({ deviceid: 'd3', ipaddr: '10.0.0.1', ssid: 'x', keyver: 2 })).created.should.be.true();
    (await store.keyFloor('d3')).should.equal(0);
    (await store.get('d3')).keyver.should.equal(2);
  });

  it('a sleeper: its registration declares the sleep; its reading is answered with the sealed config and its commands; late only after two missed wakes', async function () {
    const sealed = { sealed: { authenticated: true, keyver: 0 } };
    (await act('register', 's1', { ipaddr: '10.0.0.1', ssid: 'x', rxbuf: 4096, sleep: 900, SEQN: 1 }, sealed)).statusCode.should.equal(201);
    (await store.get('s1')).sleep.should.equal(900);
    await store.noteSource('s1', '10.0.0.1');
    const cmd = await act('command', 's1', { led: true });
    const queued = await act('queue-command', 's1', { sealed: 1 }, { seqn: cmd.seqn, push: lib.pushPolicy('any') });
    queued.statusCode.should.equal(202);
    should(queued.pushUrl).be.undefined();  // a sleeper is never pushed to: its next wake's answer offers the command
    // The reading is stored and answered as a poll would be: re, cfgsn, data, commands, more; to be sealed (answer).
    const answer = await act('log', 's1', { data: { t: 1 }, sleep: 900, SEQN: 2, ack: 0 }, sealed);
    answer.statusCode.should.equal(200);
    answer.answer.should.equal('config');
    answer.keyVersion.should.equal(0);
    answer.payload.should.eql({ re: 2, cfgsn: 1, data: {}, commands: [{ sealed: 1 }], more: false });
    (await store.readings('s1', { limit: 10 })).length.should.equal(1);
    // The next wake's reading acknowledges it: nothing is offered any more.
    const next = await act('log', 's1', { data: { t: 2 }, sleep: 900, SEQN: 3, ack: 1 }, sealed);
    next.payload.commands.should.eql([]);
    (await store.commandLog('s1', 10)).map((c) => c.state).should.eql(['acknowledged']);
    // A device that is always on (no sleep in its reading) gets the plain OK, as before; so does a plain-mode reading.
    const always = await act('log', 's1', { data: {}, SEQN: 4, ack: 1 }, sealed);
    always.payload.should.eql({ status: 'OK' });
    should(always.answer).be.undefined();
    should((await lib.runAction(store, { action: 'log', deviceid: 's1', body: { data: {}, sleep: 900, SEQN: 5 }, heartbeatMs: 60000, sealed: { authenticated: true } }, t)).answer).be.undefined();
    // A registration that declares no sleep makes it always on again; a bad sleep is refused.
    (await act('register', 's1', { ipaddr: '10.0.0.1', ssid: 'x', SEQN: 6 }, sealed)).statusCode.should.equal(200);
    (await store.get('s1')).sleep.should.equal(0);
    for (const bad of [-1, 86401, 1.5, 'x']) (await act('register', 's1', { ipaddr: '10.0.0.1', ssid: 'x', sleep: bad, SEQN: 7 }, sealed)).statusCode.should.equal(400);
    // Presence: asleep until the next wake, offline only after 2.5 periods; the operator's interval wins.
    const seen = '2026-12-05T12:00:00.000Z';
    const at = (min) => Date.parse(seen) + min * 60000;
    lib.presence({ lastseen: seen, sleep: 900, data: {} }, 60000, at(5)).should.eql({ online: true, nextwake: '2026-12-05T12:15:00.000Z' });
    lib.presence({ lastseen: seen, sleep: 900, data: {} }, 60000, at(37)).online.should.be.true();
    lib.presence({ lastseen: seen, sleep: 900, data: {} }, 60000, at(38)).online.should.be.false();
    lib.presence({ lastseen: seen, sleep: 900, data: { interval: 60 } }, 60000, at(3)).should.eql({ online: false, nextwake: '2026-12-05T12:01:00.000Z' });
    lib.presence({ lastseen: seen, sleep: 0, data: {} }, 60000, at(0.5)).should.eql({ online: true, nextwake: null });
  });

  it('commands stay pending through polls until an uplink acknowledges them; then they are no longer offered', async function () {
    (await act('register', 'd4', { ipaddr: '10.0.0.1', ssid: 'x', rxbuf: 4096, SEQN: 1, ack: 0 }, { sealed: { authenticated: true, keyver: 0 } })).statusCode.should.equal(201);
    for (const n of [1, 2]) {
      const cmd = await act('command', 'd4', { n });
      cmd.statusCode.should.equal(202);
      cmd.keyVersion.should.equal(0);
      (await act('queue-command', 'd4', { sealed: n }, { seqn: cmd.seqn })).statusCode.should.equal(202);
    }
    const poll = (SEQN, ack) => act('get', 'd4', { SEQN, ack }, { sealed: { authenticated: true, keyver: 0 } });
    (await poll(2, 0)).payload.commands.should.eql([{ sealed: 1 }, { sealed: 2 }]);
    (await poll(3, 0)).payload.commands.length.should.equal(2);
    (await store.commandLog('d4', 10)).map((c) => c.state).should.eql(['pending', 'pending']);
    const answer = await poll(4, 1);
    answer.payload.should.containEql({ re: 4, commands: [{ sealed: 2 }], more: false });
    (await act('log', 'd4', { data: {}, SEQN: 5, ack: 2 }, { sealed: { authenticated: true, keyver: 0 } })).statusCode.should.equal(200);
    (await store.commandLog('d4', 10)).map((c) => `${c.seqn}:${c.state}`).should.eql(['2:acknowledged', '1:acknowledged']);
    (await poll(6, 2)).payload.commands.should.eql([]);
    // A plain poll is refused when devices authenticate.
    (await act('get', 'd4', {})).statusCode.should.equal(401);
  });

  it('plain mode: a poll answer stays within the declared receive buffer; only what it offers counts as offered', async function () {
    const plain = { acknowledged: false, perDevice: false };
    const run = (action, body, extra = {}) => lib.runAction(store, { action, deviceid: 'p1', body, heartbeatMs: 60000, deviceAuth: plain, ...extra }, t);
    (await run('register', { ipaddr: '10.0.0.1', ssid: 'x', rxbuf: 600 })).statusCode.should.equal(201);
    for (let n = 1; n <= 5; n++) {
      const cmd = await run('command', { text: 'c'.repeat(100), n });
      cmd.statusCode.should.equal(202);
      (await run('queue-command', { iv: 'i'.repeat(24), data: 'd'.repeat(190), n }, { seqn: cmd.seqn })).statusCode.should.equal(202);
    }
    const seen = [];
    for (let poll = 0; poll < 5 && seen.length < 5; poll++) {
      const answer = await run('get', {});
      answer.statusCode.should.equal(200);
      Buffer.byteLength(JSON.stringify(answer.payload)).should.be.belowOrEqual(600);
      answer.payload.commands.length.should.be.above(0);
      seen.push(...answer.payload.commands.map((c) => c.n));
      (await store.commandLog('p1', 10)).filter((c) => c.state === 'offered').length.should.equal(seen.length);
    }
    seen.should.eql([1, 2, 3, 4, 5]);
    // A command that could never fit a plain answer of 600 bytes is refused when it is queued.
    (await run('command', { text: 'x'.repeat(700) })).statusCode.should.equal(413);
  });

  it('a sealed registration or poll without a valid SEQN is a 400, not a thrown error', async function () {
    const sealed = { sealed: { authenticated: true, keyver: 0 } };
    (await act('register', 'd9', { ipaddr: '10.0.0.1', ssid: 'x', SEQN: 'x' }, sealed)).statusCode.should.equal(400);
    (await act('get', 'd9', null, sealed)).statusCode.should.equal(400);
  });

  it('expires commands nobody acknowledged, and lists them as expired', async function () {
    await store.register({ deviceid: 'd5', ipaddr: '10.0.0.1', ssid: 'x' });
    await store.queueCommand('d5', 1, { sealed: 1 }, Date.now() - 10_000);
    await store.queueCommand('d5', 2, { sealed: 2 }, Date.now());
    (await store.expireCommands(5_000)).map((c) => `${c.deviceid}:${c.seqn}`).should.eql(['d5:1']);
    (await store.expireCommands(5_000)).should.eql([]);
    (await store.pendingCommands('d5', 10)).map((c) => c.seqn).should.eql([2]);
    (await store.commandLog('d5', 10)).map((c) => c.state).should.eql(['pending', 'expired']);
  });

  it('a config answer stays within the receive buffer, offers at most 10 commands, and says when more wait', function () {
    const device = { cfgsn: 3, data: { interval: 5 }, rxbuf: 700 };
    const command = (i) => ({ iv: 'A'.repeat(24), data: 'B'.repeat(150), mac: 'C'.repeat(44), kv: 0, i });
    const pending = Array.from({ length: 12 }, (_, i) => ({ seqn: i + 1, command: command(i), created: '' }));
    const answer = lib.configResponse(device, 9, pending, 0);
    answer.commands.length.should.be.above(0);
    lib.sealedLength(Buffer.byteLength(JSON.stringify(answer)), 0).should.be.belowOrEqual(700);
    const withOneMore = { ...answer, commands: [...answer.commands, command(answer.commands.length)] };
    lib.sealedLength(Buffer.byteLength(JSON.stringify(withOneMore)), 0).should.be.above(700);
    answer.more.should.be.true();
    const unlimited = lib.configResponse({ ...device, rxbuf: 0 }, 9, pending, 0);
    unlimited.commands.length.should.equal(10);
    unlimited.more.should.be.true();
    lib.configResponse({ ...device, rxbuf: 0 }, 9, pending.slice(0, 2), 0).more.should.be.false();
  });

  it('rekey needs per-device keys with acknowledgements; a command that cannot fit the device gets 413', async function () {
    await store.register({ deviceid: 'd6', ipaddr: '10.0.0.1', ssid: 'x', rxbuf: 600 });
    (await act('rekey', 'd6', {}, { deviceAuth: { acknowledged: true, perDevice: false } })).statusCode.should.equal(409);
    (await act('rekey', 'd6', {}, { deviceAuth: { acknowledged: true, perDevice: true } })).statusCode.should.equal(409);
    (await act('rekey', 'd6', {}, { deviceAuth: undefined })).statusCode.should.equal(409);
    const rekey = await act('rekey', 'd6', {});
    rekey.statusCode.should.equal(202);
    rekey.payload.should.eql({ rekey: { kv: 1 }, SEQN: 1 });
    rekey.keyVersion.should.equal(0);
    // While the rekey is pending, no command can be sealed under the new key (it exists once the device answers).
    const refused = await act('command', 'd6', { led: true });
    refused.statusCode.should.equal(409);
    refused.payload.message.should.match(/rekey to key version 1/);
    await store.promoteKey('d6', 1, 'wrapped');
    (await act('command', 'd6', { led: true })).keyVersion.should.equal(1);
    (await act('command', 'd6', { pad: 'x'.repeat(200) })).statusCode.should.equal(413);
  });
});
