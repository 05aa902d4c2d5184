/**
 * The training plugin: retraining as queued jobs, the model registry with its evaluation gate, promote /
 * rollback, hyperparameter search. It provides the `modelRegistry` service; serving code (the vision
 * plugin) subscribes with `modelRegistry.onChange(...)` to switch models without a restart, and can load
 * the heads this plugin trains with `modelRegistry.loadHead(artifact)`.
 */
import { definePlugin, type Engine } from '../../engine/index.ts';
import { trainingCommands } from './commands.ts';
import { trainingJobs } from './jobs.ts';
import { ModelRegistry } from './lib/registry.ts';

export default definePlugin({
  name: 'training',
  description: 'Queued training, model registry with an evaluation gate, promote/rollback and tuning.',
  provides: ['modelRegistry'],
  commands: trainingCommands,
  jobs: trainingJobs,
  setup(engine: Engine) {
    const registry = new ModelRegistry({
      store: () => engine.services.store,
      logger: engine.logger.child({ plugin: 'training' }),
      redisUrl: engine.config.REDIS_URL,
    });
    engine.provide('modelRegistry', registry, 'training');
  },
  async status(engine: Engine) {
    if (!engine.hasStore) return {};
    const store = engine.services.store;
    const champions: Record<string, number | null> = {};
    for (const task of ['hype', 'brand', 'gan']) champions[task] = (await store.models.getAlias(task, 'champion')) ?? null;
    const queue = await engine.services.jobs.health().catch((err: unknown) => ({ ok: false, detail: String(err) }));
    return { champions, queue };
  },
  hooks: {
    async onClose(engine: Engine) {
      await engine.service<ModelRegistry>('modelRegistry')?.close();
    },
  },
});
