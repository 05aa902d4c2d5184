/**
 * Long selections run as queued jobs. When the job queue is BullMQ and a selection holds more images than
 * a couple of seconds of work, the command enqueues `explore.run` and follows it (progress and queue
 * position reach the caller as usual); a worker — possibly on another machine — runs the same command
 * and sends the reply back with its PNGs base64-encoded. Small selections, the in-process runner and the
 * job itself run the command directly.
 */
import { z } from 'zod';
import { defineJob, EngineError, type AnyCommand, type CommandContext, type Reply } from '../../../engine/index.ts';
import { toImageFilter, type Selection } from './selection.ts';

/** The job that runs an explore command on a worker. */
export const EXPLORE_JOB = 'explore.run';

/** Above this many selected images a command is queued (about 2 s of work here); env overrides it. */
export function queueThreshold(): number {
  const v = Number(process.env.SOLESCOPE_EXPLORE_QUEUE_ABOVE);
  return Number.isFinite(v) && v >= 0 ? v : 40;
}

interface EncodedReply extends Omit<Reply, 'images'> {
  readonly images?: readonly { name: string; png: string; alt?: string }[];
}

function encode(reply: Reply): EncodedReply {
  const { images, ...rest } = reply;
  return images ? { ...rest, images: images.map((i) => ({ name: i.name, png: i.png.toString('base64'), ...(i.alt ? { alt: i.alt } : {}) })) } : rest;
}

function decode(value: unknown): Reply {
  const r = value as EncodedReply;
  if (!r || typeof r.text !== 'string') throw new EngineError('INTERNAL', 'The exploration job returned no reply.');
  const { images, ...rest } = r;
  return images ? { ...rest, images: images.map((i) => ({ name: i.name, png: Buffer.from(i.png, 'base64'), ...(i.alt ? { alt: i.alt } : {}) })) } : rest;
}

/** Wrap a selection command so long selections go through the queue. */
export function queuedWhenLong<C extends AnyCommand>(command: C): C {
  const run = async (input: Record<string, unknown>, ctx: CommandContext): Promise<Reply> => {
    const jobs = ctx.services.jobs;
    if (jobs.kind !== 'bullmq' || ctx.transport === 'job' || !ctx.engine.hasStore) return command.run(input as never, ctx);
    const count = await ctx.services.store.images.count(toImageFilter(input as Selection)).catch(() => 0);
    if (count <= queueThreshold()) return command.run(input as never, ctx);
    const info = await jobs.enqueue(
      EXPLORE_JOB,
      { command: command.name, input, callerId: ctx.caller.id, ...(ctx.guildId ? { guildId: ctx.guildId } : {}) },
      { requestedBy: ctx.caller.id, ...(ctx.guildId ? { guildId: ctx.guildId } : {}) },
    );
    ctx.progress({ stage: `queued (${count} images)`, ...(info.queuePosition ? { queuePosition: info.queuePosition } : {}) });
    return decode(await jobs.waitFor(info.id, (e) => ctx.progress(e), ctx.signal));
  };
  return { ...command, run } as C;
}

/** The job: run the command in the worker's engine and return the encoded reply. */
export const exploreJob = defineJob({
  name: EXPLORE_JOB,
  data: z
    .object({
      command: z.enum(['mean-shoe', 'cluster-map', 'eda']),
      input: z.record(z.string(), z.unknown()),
      callerId: z.string().min(1),
      guildId: z.string().optional(),
    })
    .strict(),
  attempts: 2,
  async run(data, jctx) {
    // The request was authorised and rate-limited when it was queued; the worker runs it as trusted.
    const result = await jctx.engine.invoke(data.command, data.input, {
      transport: 'job',
      caller: { id: data.callerId, isAdmin: true },
      ...(data.guildId ? { guildId: data.guildId } : {}),
      signal: jctx.signal,
      onProgress: (e) => void jctx.progress(e),
    });
    if (!result.ok) throw result.error;
    return encode(result.reply);
  },
});
