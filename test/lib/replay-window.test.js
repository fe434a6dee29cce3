'use strict';
require('should');
const lib = require('../../dist/nodes/lib');

/** Feeds numbers through decide(), returning accepted/reason per number. */
function feed(seqs, window, state = lib.INITIAL_STATE) {
  const out = [];
  for (const seq of seqs) {
    const d = lib.decide(state, seq, window);
    if (d.accepted) state = d.next;
    out.push(d.accepted ? 'ok' : d.reason);
  }
  return { out, state };
}

/** A slow, obviously-correct model: the set of every accepted number. */
function model(seqs, window) {
  const accepted = new Set();
  let top = -1;
  return seqs.map((seq) => {
    if (seq > top) {
      accepted.add(seq);
      top = seq;
      return 'ok';
    }
    if (window === 0) return seq === top ? 'replay' : 'stale';
    if (top - seq >= window) return 'stale';
    if (accepted.has(seq)) return 'replay';
    accepted.add(seq);
    return 'ok';
  });
}

describe('lib/replay-window', function () {
  it('window 0: strictly increasing; equal is a replay, lower is stale', function () {
    feed([0, 1, 5, 5, 4, 6, 100, 99], 0).out.should.eql(['ok', 'ok', 'ok', 'replay', 'stale', 'ok', 'ok', 'stale']);
  });
  it('accepts 0 as the first number and any first number', function () {
    feed([0], 0).out.should.eql(['ok']);
    feed([123456], 0).out.should.eql(['ok']);
  });
  it('window N: a late number inside the window passes exactly once', function () {
    feed([10, 8, 9, 8, 9, 10, 11, 3], 4).out.should.eql(['ok', 'ok', 'ok', 'replay', 'replay', 'replay', 'ok', 'stale']);
  });
  it('window N: the edge of the window', function () {
    // top 100, window 8: 93 is the oldest acceptable number, 92 is stale.
    feed([100, 93, 92, 93], 8).out.should.eql(['ok', 'ok', 'stale', 'replay']);
  });
  it('a jump larger than the window forgets nothing it should remember', function () {
    feed([1, 2, 1000, 999, 2, 1000], 16).out.should.eql(['ok', 'ok', 'ok', 'ok', 'stale', 'replay']);
  });
  it('matches the set-based model on random sequences, several windows', function () {
    for (const window of [0, 1, 2, 7, 32, 64, 100]) {
      for (let run = 0; run < 30; run++) {
        const seqs = [];
        let base = Math.floor(Math.random() * 50);
        for (let i = 0; i < 300; i++) {
          base += Math.floor(Math.random() * 3);
          seqs.push(Math.max(0, base - Math.floor(Math.random() * (window + 5))));
        }
        feed(seqs, window).out.should.eql(model(seqs, window), `window ${window}`);
      }
    }
  });
  it('changing the window never accepts something the old state rejected', function () {
    const { state } = feed([50, 48, 47], 4);
    // Widen to 16: 46 was not tracked by the 4-wide window, so it counts as seen.
    feed([46, 48, 49, 51], 16, state).out.should.eql(['replay', 'replay', 'ok', 'ok']);
    // Narrow to strict: nothing at or below the top passes.
    feed([49, 50, 51], 0, state).out.should.eql(['stale', 'replay', 'ok']);
  });
  describe('parseSeq', function () {
    it('accepts non-negative safe integers and digit strings', function () {
      lib.parseSeq(0).should.eql({ ok: true, seq: 0 });
      lib.parseSeq('42').should.eql({ ok: true, seq: 42 });
      lib.parseSeq(Number.MAX_SAFE_INTEGER).ok.should.be.true();
    });
    it('rejects everything else', function () {
      for (const v of [-1, 1.5, NaN, Infinity, '1e3', ' 1', '-1', '0x10', '1.0', Number.MAX_SAFE_INTEGER + 1, '99999999999999999', true, {}, [1]]) {
        lib.parseSeq(v).should.eql({ ok: false, reason: 'bad-seq' }, String(v));
      }
      for (const v of [undefined, null, '']) lib.parseSeq(v).should.eql({ ok: false, reason: 'missing-seq' });
    });
  });
});
