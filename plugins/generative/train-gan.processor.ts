/**
 * Processor file of `generative.train-gan`: BullMQ runs it in a sandboxed child process (see jobs/worker.ts), so
 * seconds-long tfjs steps never starve the queue's lock renewal or the bot's event loop.
 */
import { trainGanJob } from './jobs.ts';

export default trainGanJob;
