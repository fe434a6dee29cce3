/**
 * The package's library, by layer (docs/architecture.md): each folder's index is its public face, and a layer
 * imports only from the layers below it. This file is the face of them all, for the nodes, the backend app, the
 * simulator and the tests.
 */
export * from './common';
export * from './crypto';
export * from './wire';
export * from './registry';
export * from './uplink';
export * from './store';
export * from './downlink';
export * from './api';
export * from './http';
