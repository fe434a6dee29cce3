/** What goes down to a device: config answers, command offers within its receive buffer, the push policy. */
export * from './config-answer';
export * from './push-target';
