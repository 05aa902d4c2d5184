/**
 * The public API of the solescope engine. Plugins, jobs and transports import from here only.
 */
export * from './errors.ts';
export * from './reply.ts';
export * from './schema.ts';
export * from './define.ts';
export * from './context.ts';
export * from './engine.ts';
export * from './jobs.ts';
export * from './guards.ts';
export * from './config.ts';
export * from './logger.ts';
export * from './metrics.ts';
export * from './loader.ts';
export * from './store/index.ts';
export * from './image.ts';
export * from './fetch.ts';
