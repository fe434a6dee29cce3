/** The device rules: what a device id, a registration, an update or a command may be; provisioning; retention. */
export * from './rules';
export * from './provision';
export * from './retention';
export * from './events';
