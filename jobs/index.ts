/**
 * The BullMQ job system of solescope: the runner (producer side), workers (consumer side, sandboxed for
 * heavy jobs), the worker entry, and the bull-board dashboard. Composition roots in `bot/` wire these.
 */
export { BullJobRunner, createBullJobRunner, cancelChannel, type BullJobRunnerOptions, type FlowSpec, type FlowChildSpec } from './runner.ts';
export { startJobWorkers, SANDBOX_PROCESSOR_FILE, DEFAULT_ENGINE_FACTORY, type JobWorkerOptions, type JobWorkers } from './worker.ts';
export { startWorker, runWorkerMain, type StartWorkerOptions, type RunningWorker } from './worker-main.ts';
export { mountQueueDashboard, adminTokenGuard, DASHBOARD_PATH } from './dashboard.ts';
export { createWorkerEngine, PLUGINS_DIR } from './engine-factory.ts';
export { createRedisConnection, queueNameFor, parseQueueConcurrency, maxJobsPerGuildFromEnv, DEFAULT_PREFIX, DEFAULT_REDIS_URL } from './connection.ts';
export { encodeError, decodeError, encodeProgress, decodeProgress, unwrapJobData, CANCELLED_MESSAGE, type JobEnvelope, type StoredProgress } from './codec.ts';
export { processJob, type ProcessableJob } from './process-job.ts';
