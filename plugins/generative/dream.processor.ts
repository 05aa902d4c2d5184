/**
 * Processor file of `generative.dream`: BullMQ runs it in a sandboxed child process (see jobs/worker.ts), so
 * seconds-long tfjs steps never starve the queue's lock renewal or the bot's event loop.
 */
import { dreamJob } from './jobs.ts';

export default dreamJob;
