/**
 * `npm run worker`: a process that only processes queued jobs — how to add capacity or a GPU machine.
 * Same code, same REDIS_URL and DATABASE_URL as the server; tfjs-node-gpu is picked when installed.
 */
import { loadConfig, toEngineError } from '../engine/index.ts';
import { runWorkerMain } from '../jobs/index.ts';

try {
  loadConfig(process.env);
} catch (err) {
  process.stderr.write(`${toEngineError(err).message}\n`);
  process.exit(2);
}
await runWorkerMain();
