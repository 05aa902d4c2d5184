/** The shared composition root (engine/compose.ts), under the name the transports import. */
export { createRuntime, PLUGINS_DIR, type Runtime, type RuntimeOptions } from '../engine/compose.ts';
