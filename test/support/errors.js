'use strict';
/** Runs fn and returns the error it throws; fails the test when it does not throw. */
function thrown(fn, what = 'function') {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error(`${what} did not throw`);
}
module.exports = { thrown };
