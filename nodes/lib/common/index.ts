/** What every layer shares: the package's error type, and the funnel and translator type the nodes hand down. */
export * from './errors';
export * from './funnel';
