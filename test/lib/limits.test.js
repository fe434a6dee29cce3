'use strict';
require('should');
const lib = require('../../dist/nodes/lib');

const t = lib.catalogTranslator({ e2ee: require('../../nodes/shared/locales/en-US/common.json') });

describe('lib/rate-limit', function () {
  it('parses E2EE_RATE_LIMIT: off, per-part specs, defaults for what is not named; refuses anything else', function () {
    lib.parseRateLimits(undefined).should.eql(lib.DEFAULT_RATE_LIMITS);
    lib.parseRateLimits('off').should.eql({ device: null, source: null });
    lib.parseRateLimits('device=2/s').should.eql({ device: { rate: 2, burst: 8 }, source: lib.DEFAULT_RATE_LIMITS.source });
    lib.parseRateLimits('device=0.5/s burst 3, source=off').should.eql({ device: { rate: 0.5, burst: 3 }, source: null });
    for (const bad of ['device=5', 'devices=5/s', 'source=-1/s', '5/s', 'device=0/s']) (() => lib.parseRateLimits(bad)).should.throw(/bad rate limit/);
  });

  it('a token bucket allows its burst, then one request per 1/rate seconds, and says how long to wait', function () {
    const b = new lib.TokenBuckets({ rate: 2, burst: 3 });
    [0, 0, 0].map(() => b.take('a', 1000)).should.eql([0, 0, 0]);
    b.take('a', 1000).should.equal(500);
    b.take('b', 1000).should.equal(0); // another key has its own bucket
    b.take('a', 1500).should.equal(0);
    b.take('a', 1500).should.equal(500);
  });

  it('stays bounded: full buckets are swept, and the oldest go first beyond maxKeys', function () {
    const b = new lib.TokenBuckets({ rate: 10, burst: 10 }, 100);
    for (let i = 0; i < 1000; i++) b.take(`k${i}`, i);
    b.size.should.be.belowOrEqual(100);
    b.sweep(1_000_000);
    b.size.should.equal(0);
  });
});

describe('lib/rejection-log', function () {
  it('logs the first rejection of a source at once and the rest as one summary per source and interval', function () {
    const lines = [];
    const log = new lib.RejectionLog((l) => lines.push(l), t, 60000);
    try {
      log.record('10.0.0.1', 'AA', 'replay');
      for (let i = 0; i < 50; i++) log.record('10.0.0.1', `D${i % 3}`, i % 2 ? 'replay' : 'Decryption failed');
      log.record('10.0.0.2', 'BB', 'stale');
      lines.length.should.equal(2);
      lines[0].should.match(/^request from "AA" \(source 10\.0\.0\.1\) rejected: replay/);
      log.flush();
      lines.length.should.equal(3); // 10.0.0.2 had only its first
      lines[2].should.equal('50 more requests from 10.0.0.1 rejected in the last 60 s: Decryption failed 25, replay 25 (devices "D0", "D1", "D2")');
      log.flush();
      lines.length.should.equal(3);
    } finally {
      log.stop();
    }
  });

  it('names what was rejected: a reading, a registration or a config poll, by route or by MQTT topic', function () {
    const lines = [];
    const log = new lib.RejectionLog((l) => lines.push(l), t, 60000);
    try {
      log.record('10.0.0.1', 'A', 'replay', lib.uplinkKind('/api/devices/A/readings'));
      log.record('10.0.0.2', 'B', 'Decryption failed', lib.uplinkKind('/api/devices/B'));
      log.record('10.0.0.3', 'C', 'stale', lib.uplinkKind('/api/devices/C/poll'));
      log.record('MQTT', 'D', 'replay', lib.uplinkKind(undefined, 'register'));
      log.record('10.0.0.4', 'E', 'rate-limited', lib.uplinkKind('/api/devices/E/commands'));
      lines.map((l) => l.split(' from ')[0]).should.eql(['reading', 'registration', 'config poll', 'registration', 'request']);
    } finally {
      log.stop();
    }
  });

  it('tracks a bounded number of sources; the others share one summary', function () {
    const lines = [];
    const log = new lib.RejectionLog((l) => lines.push(l), t, 60000, 10);
    try {
      for (let i = 0; i < 1000; i++) log.record(`10.0.${i >> 8}.${i & 255}`, 'X', 'replay');
      lines.length.should.equal(10);
      log.flush();
      lines.length.should.equal(11);
      lines[10].should.match(/^990 more requests from other sources rejected/);
    } finally {
      log.stop();
    }
  });
});

describe('lib/device-api', function () {
  const fakeRes = () => {
    const res = { code: 0, headers: {}, body: undefined };
    res.status = (c) => { res.code = c; return res; };
    res.set = (k, v) => { res.headers[k] = v; return res; };
    res.json = (b) => { res.body = b; };
    return res;
  };
  it('rate-limits every API route per source, in every spelling of its path; a device is charged only by deviceRateCheck', function () {
    let now = 0;
    const limited = [];
    const mw = lib.sourceRateLimit(new lib.TokenBuckets({ rate: 1, burst: 5 }), t, (s, d) => limited.push([s, d]), () => now);
    const call = (method, p, ip = '1.1.1.1') => {
      const res = fakeRes();
      let passed = false;
      mw({ method, path: p, ip }, res, () => { passed = true; });
      return passed ? 200 : res.code;
    };
    call('POST', '/api/devices/A/readings').should.equal(200);
    call('GET', '/api/devices/A').should.equal(200);
    // Operator routes count too, and so does every spelling Express routes alike.
    call('GET', '/api/devices').should.equal(200);
    call('POST', '/API/Devices/A/READINGS').should.equal(200);
    call('PUT', '/api/devices/A/').should.equal(200);
    // The source's burst of 5 is spent, whatever device the request names.
    call('POST', '/Api/devices/B').should.equal(429);
    call('POST', '/api/devices/B', '2.2.2.2').should.equal(200);
    // Paths outside the API are not limited.
    call('GET', '/elsewhere').should.equal(200);
    limited.should.eql([['1.1.1.1', 'B']]);
    now += 1000;
    call('POST', '/api/devices/A').should.equal(200);
    // A device's own bucket: only what proved the device spends it.
    const byDevice = new lib.TokenBuckets({ rate: 1, burst: 2 });
    lib.deviceRateCheck(byDevice, 'A', 0).should.equal(0);
    lib.deviceRateCheck(byDevice, 'A', 0).should.equal(0);
    lib.deviceRateCheck(byDevice, 'A', 0).should.be.above(0);
    lib.deviceRateCheck(byDevice, 'B', 0).should.equal(0);
    lib.deviceRateCheck(undefined, 'A', 0).should.equal(0);
  });

  it('matches the API routes as Express does: any case, a trailing slash, an encoded segment', function () {
    for (const p of ['/api/devices/x/readings', '/API/DEVICES/x/READINGS', '/Api/Devices/x/Readings/', '/api/devices/a%2Fb/readings', '/api/devices/x;y/readings']) {
      lib.READINGS_ROUTE.test(p).should.be.true(p);
    }
    lib.READINGS_ROUTE.test('/api//devices/x/readings').should.be.false();
    lib.pathDeviceId('/API/DEVICES/5C%3ACF/poll').should.equal('5C:CF');
    (lib.routeOf('/API/devices/x/RESET') !== undefined).should.be.true();
  });

  it('a HEAD on an API route is answered 405 before any flow, and JSONP is plain JSON', function () {
    const mw = lib.apiAnswers(t);
    const res = fakeRes();
    let passed = false;
    mw({ method: 'HEAD', path: '/API/devices/x' }, res, () => { passed = true; });
    passed.should.be.false();
    res.code.should.equal(405);
    res.headers.Allow.should.equal('GET, POST, PUT, DELETE');
    const res2 = fakeRes();
    mw({ method: 'GET', path: '/api/devices' }, res2, () => { passed = true; });
    passed.should.be.true();
    res2.jsonp({ a: 1 });
    res2.body.should.eql({ a: 1 });
  });

  it('the rejection log keeps every line one line: control characters are escaped', function () {
    const lines = [];
    const log = new lib.RejectionLog((l) => lines.push(l), (key, p) => (p ? `${key} ${p.source} ${p.device} ${p.reason}` : key), 60000);
    log.record('10.0.0.1\n', 'dev\r\n', 'Unexpected token\n} in JSON\u001b[31m');
    log.stop();
    lines.should.have.length(1);
    lines[0].should.not.match(/[\n\r\u001b]/);
    lines[0].should.match(/\\u000a/);
  });

  it('falls back to 405 with Allow for a known path and 404 for others', function () {
    const fb = lib.deviceApiFallback(t);
    const res = fakeRes();
    fb({ method: 'PATCH', baseUrl: '/api', path: '/devices/x/readings' }, res);
    res.code.should.equal(405);
    res.headers.Allow.should.equal('GET, POST');
    const res2 = fakeRes();
    fb({ method: 'GET', baseUrl: '/api', path: '/other' }, res2);
    res2.code.should.equal(404);
    res2.body.should.eql({ status: 'NOK', message: 'Not found' });
  });
});

describe('lib/device-api hideAuthorization', function () {
  it('keeps the header readable but out of JSON, inspection and rawHeaders, on the API routes only', function () {
    const util = require('node:util');
    const mw = lib.hideAuthorization();
    const req = { path: '/api/devices', headers: { authorization: 'Bearer s3cret-token', host: 'x' }, rawHeaders: ['Host', 'x', 'Authorization', 'Bearer s3cret-token'] };
    let called = false;
    mw(req, {}, () => { called = true; });
    called.should.be.true();
    req.headers.authorization.should.equal('Bearer s3cret-token');
    JSON.stringify(req).should.not.containEql('s3cret');
    util.inspect(req, { depth: 5 }).should.not.containEql('s3cret');
    const other = { path: '/elsewhere', headers: { authorization: 'Bearer x' }, rawHeaders: ['Authorization', 'Bearer x'] };
    mw(other, {}, () => undefined);
    JSON.stringify(other).should.containEql('Bearer x');
  });
});
