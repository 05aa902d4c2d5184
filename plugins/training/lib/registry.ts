/**
 * The model registry on top of the store: versions, `champion` / `candidate` aliases, compare-and-set
 * promotion (two promotions racing → exactly one wins), atomic rollback, and change notification so
 * serving processes switch models without a restart (Redis pub/sub on `solescope:models` when Redis is
 * configured, plus polling of the alias as the safety net).
 */
import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { EngineError, type Logger, type Store } from '../../../engine/index.ts';
import { loadHead } from './head.ts';

/** The pub/sub channel announcing alias changes. */
export const MODELS_CHANNEL = 'solescope:models';

/** An alias change. */
export interface ModelChange {
  readonly task: string;
  readonly alias: string;
  readonly modelId: number;
  readonly previousModelId: number | null;
  readonly action: 'promote' | 'rollback' | 'candidate';
  readonly by: string;
}

/** Listener of alias changes. */
export type ModelChangeListener = (change: ModelChange) => void;

/**
 * Point `alias` at `modelId` only if it currently points at `expected` (undefined = no model yet), in one
 * transaction. The conditional UPDATE is the lock: on Postgres the second of two racing transactions
 * blocks on the row, then re-checks the condition and updates nothing; on SQLite writers are serialised.
 * Returns false when the alias moved meanwhile.
 */
export async function compareAndSetAlias(
  store: Store,
  input: { task: string; alias: string; modelId: number; expected: number | undefined; by: string; status?: { promoted: string; retired: string } },
): Promise<boolean> {
  const now = store.dialect === 'sqlite' ? new Date().toISOString() : new Date();
  const db = store.db;
  return db.transaction().execute(async (trx) => {
    const model = (await trx.selectFrom('models').select(['id', 'task']).where('id', '=', input.modelId).executeTakeFirst()) as { id: number; task: string } | undefined;
    if (!model) throw new EngineError('NOT_FOUND', `There is no model ${input.modelId}.`);
    if (model.task !== input.task) throw new EngineError('BAD_INPUT', `Model ${input.modelId} is a ${model.task} model, not ${input.task}.`);
    if (input.expected === input.modelId) return true;
    if (input.expected === undefined) {
      const inserted = await trx
        .insertInto('model_aliases')
        .values({ task: input.task, alias: input.alias, model_id: input.modelId, updated_by: input.by, updated_at: now } as never)
        .onConflict((oc) => oc.columns(['task', 'alias'] as never).doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 0) return false;
    } else {
      const updated = await trx
        .updateTable('model_aliases')
        .set({ model_id: input.modelId, updated_by: input.by, updated_at: now } as never)
        .where('task', '=', input.task)
        .where('alias', '=', input.alias)
        .where('model_id', '=', input.expected)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 0) return false;
    }
    await trx
      .insertInto('model_alias_history')
      .values({
        task: input.task,
        alias: input.alias,
        model_id: input.modelId,
        previous_model_id: input.expected ?? null,
        action: 'set',
        by: input.by,
        created_at: now,
      } as never)
      .execute();
    if (input.status) {
      await trx.updateTable('models').set({ status: input.status.promoted } as never).where('id', '=', input.modelId).execute();
      if (input.expected !== undefined) {
        await trx.updateTable('models').set({ status: input.status.retired } as never).where('id', '=', input.expected).execute();
      }
    }
    return true;
  });
}

/** Options of {@link ModelRegistry}. */
export interface ModelRegistryOptions {
  /** The store, or a getter (the engine may get its store after plugins registered). */
  readonly store: Store | (() => Store);
  readonly logger: Logger;
  /** Redis URL for cross-process notifications; without it, other processes notice by polling. */
  readonly redisUrl?: string | undefined;
  /** Poll interval of watched aliases (default 5 s). */
  readonly pollMs?: number;
}

/** The registry service (`ctx.services.modelRegistry`). */
export class ModelRegistry {
  /**
   * Load a head artifact this plugin trained (`solescope-head@1` JSON) for serving: `predict(embedding)`
   * gives class probabilities. Exposed here so serving plugins need not import this plugin.
   */
  readonly loadHead = loadHead;
  private readonly emitter = new EventEmitter<{ change: [ModelChange] }>();
  private publisher: Redis | undefined;
  private subscriber: Redis | undefined;
  private poller: NodeJS.Timeout | undefined;
  private readonly known = new Map<string, number | undefined>();
  private closed = false;

  constructor(private readonly options: ModelRegistryOptions) {
    this.emitter.setMaxListeners(0);
  }

  private get store(): Store {
    const s = this.options.store;
    return typeof s === 'function' ? s() : s;
  }

  /** The champion's id of a task. */
  champion(task: string): Promise<number | undefined> {
    return this.store.models.getAlias(task, 'champion');
  }

  /**
   * Promote a model to champion. `expected` is the champion the caller compared against (the gate);
   * without it the current champion is read first. CONFLICT when another promotion won meanwhile.
   */
  async promote(task: string, modelId: number, by: string, expected?: number | null): Promise<ModelChange> {
    const current = expected === undefined ? await this.champion(task) : (expected ?? undefined);
    const ok = await compareAndSetAlias(this.store, {
      task,
      alias: 'champion',
      modelId,
      expected: current,
      by,
      status: { promoted: 'promoted', retired: 'archived' },
    });
    if (!ok) {
      throw new EngineError('CONFLICT', `The ${task} champion changed while promoting model ${modelId}; nothing was changed. Check \`models list\` and try again.`);
    }
    const change: ModelChange = { task, alias: 'champion', modelId, previousModelId: current ?? null, action: 'promote', by };
    await this.store.audit.add({ actor: by, action: 'models.promote', target: `${task}:${modelId}`, details: { previous: current ?? null } });
    await this.announce(change);
    return change;
  }

  /** Restore the previous champion (atomic, with history). NOT_FOUND when there is none. */
  async rollback(task: string, by: string): Promise<ModelChange> {
    const current = await this.champion(task);
    if (current === undefined) throw new EngineError('NOT_FOUND', `There is no ${task} champion to roll back.`);
    const restored = await this.store.models.rollbackAlias(task, 'champion', by);
    await this.store.models.setStatus(restored, 'promoted');
    if (restored !== current) await this.store.models.setStatus(current, 'rolled-back');
    const change: ModelChange = { task, alias: 'champion', modelId: restored, previousModelId: current, action: 'rollback', by };
    await this.store.audit.add({ actor: by, action: 'models.rollback', target: `${task}:${restored}`, details: { from: current } });
    await this.announce(change);
    return change;
  }

  /** Mark a freshly trained model as the candidate. */
  async setCandidate(task: string, modelId: number, by: string): Promise<void> {
    const previous = await this.store.models.getAlias(task, 'candidate');
    await this.store.models.setAlias(task, 'candidate', modelId, by);
    await this.announce({ task, alias: 'candidate', modelId, previousModelId: previous ?? null, action: 'candidate', by });
  }

  private async announce(change: ModelChange): Promise<void> {
    this.known.set(`${change.task}:${change.alias}`, change.modelId);
    this.emitter.emit('change', change);
    if (!this.options.redisUrl || this.closed) return;
    try {
      this.publisher ??= new Redis(this.options.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: false });
      await this.publisher.publish(MODELS_CHANNEL, JSON.stringify(change));
    } catch (err) {
      // Other processes still notice through polling.
      this.options.logger.warn('could not publish a model change', { err });
    }
  }

  /**
   * Subscribe to alias changes of every task: in-process changes immediately, other processes' through
   * Redis pub/sub (when configured) or the poll of watched aliases. Returns an unsubscribe function.
   * This is the hook serving code uses to swap its model without a restart.
   */
  onChange(listener: ModelChangeListener, watch: readonly string[] = ['hype', 'brand', 'gan']): () => void {
    this.emitter.on('change', listener);
    void this.startWatching(watch);
    return () => this.emitter.off('change', listener);
  }

  private async startWatching(tasks: readonly string[]): Promise<void> {
    if (this.closed) return;
    for (const task of tasks) {
      for (const alias of ['champion', 'candidate']) {
        const key = `${task}:${alias}`;
        if (!this.known.has(key)) this.known.set(key, await this.store.models.getAlias(task, alias).catch(() => undefined));
      }
    }
    if (this.options.redisUrl && !this.subscriber) {
      const sub = new Redis(this.options.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
      this.subscriber = sub;
      sub.on('error', (err) => this.options.logger.debug('model channel error', { err }));
      sub.on('message', (_channel: string, message: string) => {
        try {
          const change = JSON.parse(message) as ModelChange;
          const key = `${change.task}:${change.alias}`;
          if (this.known.get(key) === change.modelId) return; // our own announcement, or already seen
          this.known.set(key, change.modelId);
          this.emitter.emit('change', change);
        } catch (err) {
          this.options.logger.warn('bad model change message', { err });
        }
      });
      await sub.subscribe(MODELS_CHANNEL).catch((err: unknown) => this.options.logger.warn('model channel subscribe failed', { err }));
    }
    this.poller ??= setInterval(() => void this.poll(), this.options.pollMs ?? 5_000);
    this.poller.unref();
  }

  private async poll(): Promise<void> {
    for (const [key, last] of this.known) {
      const [task, alias] = key.split(':') as [string, string];
      const now = await this.store.models.getAlias(task, alias).catch(() => last);
      if (now !== undefined && now !== last) {
        this.known.set(key, now);
        this.emitter.emit('change', { task, alias, modelId: now, previousModelId: last ?? null, action: alias === 'candidate' ? 'candidate' : 'promote', by: 'unknown' });
      }
    }
  }

  /** Stop polling and close Redis connections. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    this.emitter.removeAllListeners();
    this.subscriber?.disconnect();
    if (this.publisher) await this.publisher.quit().catch(() => this.publisher?.disconnect());
  }
}
