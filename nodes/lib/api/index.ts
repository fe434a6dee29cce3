/** The registry's API: one handler per action over the store, behind runAction (dispatch, token check, errors). */
export * from './types';
export { runAction } from './actions';
