'use strict';
/** Waiting in tests: a pause, and polling until a condition holds (failing with what was awaited). */

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves with fn()'s first truthy value (fn may be async), polling every 100 ms; rejects after timeoutMs. */
async function until(what, fn, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

module.exports = { sleep, until };
