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

describe('lib/push-target: every spelling of an address is judged as the address it reaches', function () {
  it('IPv4-compatible, IPv4-translated, NAT64, 6to4 and Teredo spellings of loopback and link-local are refused, under any', function () {
    const any = lib.pushPolicy('any');
    for (const a of ['::127.0.0.1', '::ffff:0:7f00:1', '::ffff:0:127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b::127.0.0.1', '2002:a9fe:a9fe::1', '2002:7f00:1::', '::169.254.169.254', '::7f00:1',
      // Teredo: the client's address is the last 32 bits inverted (0x80ffffFE is 127.0.0.1).
      '2001:0:4136:e378:8000:63bf:80ff:fffe', '64:ff9b:1::a9fe:a9fe']) {
      any.verdict(a).should.equal('refused', a);
      lib.pushPolicy().verdict(a).should.equal('refused', a);
    }
  });
  it('cloud metadata addresses are refused whatever the allow-list says', function () {
    for (const policy of [lib.pushPolicy(), lib.pushPolicy('any'), lib.pushPolicy('fd00::/8, 100.64.0.0/10')]) {
      for (const a of ['169.254.169.254', 'fd00:ec2::254', '100.100.100.200', '::ffff:100.100.100.200', '64:ff9b::6464:64c8']) policy.verdict(a).should.equal('refused', a);
    }
  });
  it('canonicalAddress: the IPv4 inside, else the address', function () {
    lib.canonicalAddress('::ffff:10.0.0.5').should.equal('10.0.0.5');
    lib.canonicalAddress('::ffff:0:a00:5').should.equal('10.0.0.5');
    lib.canonicalAddress('64:ff9b::c0a8:107').should.equal('192.168.1.7');
    lib.canonicalAddress('2002:c0a8:107::1').should.equal('192.168.1.7');
    lib.canonicalAddress('::1').should.equal('::1');
    lib.canonicalAddress('::').should.equal('::');
    lib.canonicalAddress('fd00::1').should.equal('fd00::1');
    lib.canonicalAddress('10.0.0.1').should.equal('10.0.0.1');
    // Private IPv4 behind a mapped spelling stays allowed by default.
    lib.pushPolicy().verdict('64:ff9b::c0a8:107').should.equal('allowed');
  });
});
