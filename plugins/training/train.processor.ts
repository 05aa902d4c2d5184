/**
 * Processor file of the training jobs: BullMQ forks a sandboxed child for them (see jobs/worker.ts); the
 * child builds its own engine with the same plugins and runs the definition by name. The default export
 * is the `training.train` definition, as the engine's `processorFile` contract asks.
 */
import { trainJob } from './jobs.ts';

export default trainJob;
