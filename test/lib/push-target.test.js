'use strict';
require('should');
const lib = require('../../dist/nodes/lib');

describe('lib/push-target', function () {
  const policy = lib.pushPolicy();
  it('refuses loopback, link-local, multicast, broadcast and unspecified addresses, IPv4 and IPv6, mapped ones too', function () {
    for (const a of ['127.0.0.1', '127.255.0.9', '169.254.169.254', '0.0.0.0', '224.0.0.1', '239.255.255.250', '255.255.255.255', '::', '::1', 'fe80::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', 'not an ip', '']) {
      policy.verdict(a).should.equal('refused', a);
    }
  });
  it('allows the private ranges by default, and nothing else', function () {
    for (const a of ['10.0.0.1', '172.16.5.4', '172.31.255.255', '192.168.1.50', '100.64.0.1', 'fd00::1234', '::ffff:192.168.0.7']) policy.verdict(a).should.equal('allowed', a);
    for (const a of ['8.8.8.8', '172.32.0.1', '192.169.0.1', '2001:db8::1', '11.0.0.1']) policy.verdict(a).should.equal('not-allowed', a);
  });
  it('E2EE_PUSH_ALLOW replaces the allowed ranges, never the refused ones; a bad entry is an error', function () {
    const only = lib.pushPolicy('192.168.7.0/24, 2001:db8::/32');
    only.verdict('192.168.7.9').should.equal('allowed');
    only.verdict('192.168.8.9').should.equal('not-allowed');
    only.verdict('10.0.0.1').should.equal('not-allowed');
    only.verdict('2001:db8::5').should.equal('allowed');
    const any = lib.pushPolicy('any');
    any.verdict('8.8.8.8').should.equal('allowed');
    any.verdict('127.0.0.1').should.equal('refused');
    lib.pushPolicy('0.0.0.0/0').verdict('169.254.169.254').should.equal('refused');
    for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0.0/x', '1.2.3/8']) (() => lib.pushPolicy(bad)).should.throw(/bad push target range/);
  });
});
