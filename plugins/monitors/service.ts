/**
 * The monitors service: ingest (fast: authenticate, validate, parse, de-duplicate, record, enqueue) and
 * process (slow, in a job: download the image through the SSRF-safe loader, score hype + brand through
 * the engine, store the image as a resale-listed — hyped — sneaker, route and post the enriched message).
 *
 * Every accepted event is written to the store before the monitor gets its 2xx, so a worker that dies
 * mid-processing loses nothing: the job is retried, and `recover()` re-enqueues events left behind.
 */
import { Counter, Histogram } from 'prom-client';
import { EngineError, toEngineError, type Engine, type Logger, type Store } from '../../engine/index.ts';
import { loadImage } from '../../engine/image.ts';
import { executeWebhookSchema, listingKey, parseListing, type ExecuteWebhookBody, type ParsedListing } from './lib/parse.ts';
import { matchRoutes, type Route } from './lib/routes.ts';
import { newToken, sha256Hex, signatureMatches, tokenMatches } from './lib/tokens.ts';

/** A message the Discord transport posts to a channel (provided as the `channelPoster` service). */
export interface OutgoingMessage {
  readonly content?: string;
  readonly embeds: readonly Record<string, unknown>[];
  readonly files?: readonly { name: string; data: Buffer }[];
  readonly allowedRoles?: readonly string[];
}

/** Posts messages to Discord channels; provided by the bot when a token is configured. */
export interface ChannelPoster {
  post(channelId: string, message: OutgoingMessage): Promise<{ id: string }>;
}

/** An uploaded file that came with the webhook call (multipart `files[n]`). */
export interface IngestFile {
  readonly name: string;
  readonly data: Buffer;
  readonly contentType?: string;
}

/** Outcome of an ingest, for the HTTP adapter. */
export interface IngestResult {
  readonly eventId: number;
  readonly status: 'received' | 'duplicate' | 'skipped';
  readonly reason?: string;
  readonly webhookId: string;
  readonly channelId: string;
  readonly body: ExecuteWebhookBody;
}

/** Tunables (config keys documented in the README). */
export interface MonitorOptions {
  /** De-duplication window (ms) for (SKU, sizes, price) and image hash. Default 10 min. */
  readonly dedupeWindowMs: number;
  /** Signed-request freshness (ms). Default 5 min. */
  readonly maxSkewMs: number;
  /** Requests per window per webhook before 429. */
  readonly rateLimit: { readonly count: number; readonly windowMs: number };
  /** Largest image downloaded for scoring. */
  readonly maxImageBytes: number;
}

/** Defaults: Discord allows ~5 requests per 2 s per webhook; monitors burst, so we allow 30 per 2 s. */
export const DEFAULT_MONITOR_OPTIONS: MonitorOptions = {
  dedupeWindowMs: 10 * 60_000,
  maxSkewMs: 5 * 60_000,
  rateLimit: { count: 30, windowMs: 2000 },
  maxImageBytes: 8 * 1024 * 1024,
};

/** The job that processes one event. */
export const PROCESS_JOB = 'monitors.process';

interface WebhookMeta {
  readonly routes: Route[];
  readonly rateLimit?: { count: number; windowMs: number };
}

function metaOf(routes: unknown): WebhookMeta {
  if (Array.isArray(routes)) return { routes: routes as Route[] };
  if (routes && typeof routes === 'object') return routes as WebhookMeta;
  return { routes: [] };
}

/** Metrics per webhook. */
interface MonitorMetrics {
  readonly events: Counter<'webhook' | 'outcome'>;
  readonly ackSeconds: Histogram<'webhook'>;
  readonly processSeconds: Histogram<'webhook'>;
}

/** The monitors service (provided to the engine as `monitors`). */
export class MonitorService {
  readonly options: MonitorOptions;
  private readonly metrics: MonitorMetrics;

  constructor(
    private readonly engine: Engine,
    options: Partial<MonitorOptions> = {},
  ) {
    this.options = { ...DEFAULT_MONITOR_OPTIONS, ...options };
    const registry = engine.metrics.registry;
    this.metrics = {
      events: new Counter({
        name: 'solescope_webhook_events_total',
        help: 'Webhook events by webhook and outcome (received, duplicate, rejected, processed, failed, rate_limited, unauthorized).',
        labelNames: ['webhook', 'outcome'],
        registers: [registry],
      }),
      ackSeconds: new Histogram({
        name: 'solescope_webhook_ack_seconds',
        help: 'Time to acknowledge a webhook call.',
        labelNames: ['webhook'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        registers: [registry],
      }),
      processSeconds: new Histogram({
        name: 'solescope_webhook_process_seconds',
        help: 'Time from receipt to processed.',
        labelNames: ['webhook'],
        buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers: [registry],
      }),
    };
  }

  private get store(): Store {
    return this.engine.services.store;
  }

  private get logger(): Logger {
    return this.engine.logger;
  }

  /** Create a webhook; the token is returned once and stored hashed. */
  async create(input: { channelId: string; guildId?: string; name?: string; routes: Route[]; createdBy: string; rateLimit?: { count: number; windowMs: number } }): Promise<{ id: string; token: string; signingSecret: string }> {
    const token = newToken();
    const meta: WebhookMeta = { routes: input.routes, ...(input.rateLimit ? { rateLimit: input.rateLimit } : {}) };
    const row = await this.store.webhooks.create({
      tokenHash: sha256Hex(token),
      channelId: input.channelId,
      ...(input.guildId ? { guildId: input.guildId } : {}),
      ...(input.name ? { name: input.name } : {}),
      routes: meta,
      createdBy: input.createdBy,
    });
    await this.store.audit.add({ actor: input.createdBy, action: 'webhook.create', target: row.id, details: { channelId: input.channelId } });
    return { id: row.id, token, signingSecret: sha256Hex(token) };
  }

  /** Authenticate `id` + `token`; the same UNAUTHORIZED for an unknown id, a wrong token or a revoked hook. */
  async authenticate(id: string, token: string): Promise<{ id: string; channelId: string; name: string | null; meta: WebhookMeta }> {
    const row = id.length <= 100 ? await this.store.webhooks.get(id) : undefined;
    const ok = tokenMatches(token, row?.tokenHash);
    if (!ok || !row || row.revokedAt) {
      this.metrics.events.inc({ webhook: 'unknown', outcome: 'unauthorized' });
      throw new EngineError('UNAUTHORIZED', 'Invalid Webhook Token');
    }
    return { id: row.id, channelId: row.channelId, name: row.name, meta: metaOf(row.routes) };
  }

  /** Authenticate a signed request (`X-Solescope-Signature`, `X-Solescope-Timestamp`). */
  async authenticateSigned(id: string, timestamp: string | undefined, signature: string | undefined, rawBody: Buffer): Promise<{ id: string; channelId: string; name: string | null; meta: WebhookMeta }> {
    const row = id.length <= 100 ? await this.store.webhooks.get(id) : undefined;
    const secret = row?.tokenHash ?? sha256Hex('solescope-no-such-webhook');
    const ts = Number(timestamp);
    const fresh = Number.isFinite(ts) && Math.abs(Date.now() - ts * 1000) <= this.options.maxSkewMs;
    const valid = typeof signature === 'string' && signatureMatches(secret, String(timestamp), rawBody, signature);
    if (!row || row.revokedAt || !valid) {
      this.metrics.events.inc({ webhook: row?.id ?? 'unknown', outcome: 'unauthorized' });
      throw new EngineError('UNAUTHORIZED', 'Invalid signature.');
    }
    if (!fresh) {
      this.metrics.events.inc({ webhook: row.id, outcome: 'unauthorized' });
      throw new EngineError('UNAUTHORIZED', 'Stale or future timestamp: signed requests must be under 5 minutes old.');
    }
    // A valid signature seen before within the window is a replay.
    const replayKey = `monitors:sig:${row.id}:${signature}`;
    if (await this.store.kv.get(replayKey)) {
      this.metrics.events.inc({ webhook: row.id, outcome: 'unauthorized' });
      throw new EngineError('UNAUTHORIZED', 'Replayed request.');
    }
    await this.store.kv.set(replayKey, true, this.options.maxSkewMs * 2);
    return { id: row.id, channelId: row.channelId, name: row.name, meta: metaOf(row.routes) };
  }

  /** Per-webhook rate limit; RATE_LIMITED with `retryAfterMs` like Discord's 429. */
  async rateLimit(hook: { id: string; meta: WebhookMeta }): Promise<void> {
    const limit = hook.meta.rateLimit ?? this.options.rateLimit;
    const r = await this.engine.services.rateLimiter.hit(`webhook:${hook.id}`, limit.count, limit.windowMs);
    if (!r.allowed) {
      this.metrics.events.inc({ webhook: hook.id, outcome: 'rate_limited' });
      throw new EngineError('RATE_LIMITED', 'You are being rate limited.', { details: { retryAfterMs: r.retryAfterMs } });
    }
  }

  /**
   * Accept one authenticated call: validate the Execute-Webhook body, parse the listing, de-duplicate,
   * record the event and enqueue processing. Never waits for ML.
   */
  async ingest(hook: { id: string; channelId: string; name: string | null }, rawBody: unknown, files: readonly IngestFile[] = []): Promise<IngestResult> {
    const started = performance.now();
    const parsedBody = executeWebhookSchema.safeParse(rawBody);
    if (!parsedBody.success) {
      this.metrics.events.inc({ webhook: hook.id, outcome: 'rejected' });
      throw new EngineError('BAD_INPUT', `Invalid Form Body: ${parsedBody.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`);
    }
    const body = parsedBody.data;
    const listing = parseListing(body, files.map((f) => f.name));
    const key = listingKey(listing);
    let status: IngestResult['status'] = 'received';
    let reason: string | undefined;
    if (key) {
      const dedupeKey = `monitors:listing:${hook.id}:${sha256Hex(key)}`;
      if (await this.store.kv.get(dedupeKey)) {
        status = 'duplicate';
        reason = 'same SKU, sizes and price posted within the de-duplication window';
      } else {
        await this.store.kv.set(dedupeKey, Date.now(), this.options.dedupeWindowMs);
      }
    }
    if (status === 'received' && !listing.imageUrl) {
      status = 'skipped';
      reason = 'no image to score (no embed image, thumbnail or attached file)';
    }
    const event = await this.store.webhookEvents.add({
      webhookId: hook.id,
      payload: body,
      parsed: listing,
      status,
      ...(reason ? { reason } : {}),
    });
    for (const file of files) {
      // Attached files are kept briefly so the worker (maybe on another machine) can score them.
      await this.store.kv.set(`monitors:file:${event.id}:${file.name}`, file.data.toString('base64'), 24 * 3600_000);
    }
    this.metrics.events.inc({ webhook: hook.id, outcome: status });
    // Skipped drops are still delivered (unenriched), so the job runs for them too.
    if (status !== 'duplicate') {
      await this.engine.services.jobs.enqueue(PROCESS_JOB, { eventId: event.id }, { jobId: `monitor-event-${event.id}` });
    }
    this.metrics.ackSeconds.observe({ webhook: hook.id }, (performance.now() - started) / 1000);
    return { eventId: event.id, status, ...(reason ? { reason } : {}), webhookId: hook.id, channelId: hook.channelId, body };
  }

  /** Load the image bytes of a listing: an attached file or a URL through the SSRF-safe loader. */
  private async image(eventId: number, url: string, signal: AbortSignal): Promise<{ png: Buffer; sha256: string; width: number; height: number; bytes: Buffer }> {
    let ref: string | { kind: 'buffer'; data: Buffer; name: string };
    if (url.startsWith('attachment://')) {
      const name = url.slice('attachment://'.length);
      const stored = await this.store.kv.get(`monitors:file:${eventId}:${name}`);
      if (typeof stored !== 'string') throw new EngineError('NOT_FOUND', `The attached file ${name} is no longer available.`);
      ref = { kind: 'buffer', data: Buffer.from(stored, 'base64'), name };
    } else {
      ref = url;
    }
    const img = await loadImage(ref, {
      allowLocalPaths: false,
      maxBytes: this.options.maxImageBytes,
      signal,
      ...(this.engine.config.SOLESCOPE_ALLOW_PRIVATE_URLS ? { fetch: { allowPrivate: true } } : {}),
    });
    const png = await img.png();
    return { png, sha256: img.sha256, width: img.width, height: img.height, bytes: png };
  }

  /** Process one recorded event (the job body). Idempotent: a processed event is not redone. */
  async process(eventId: number, signal: AbortSignal): Promise<Record<string, unknown>> {
    const event = await this.store.webhookEvents.get(eventId);
    if (!event) throw new EngineError('NOT_FOUND', `No webhook event ${eventId}.`);
    if (event.status === 'processed' || event.status === 'duplicate' || event.status === 'rejected' || event.status === 'delivered') {
      return { eventId, status: event.status };
    }
    const hook = await this.store.webhooks.get(event.webhookId);
    if (!hook) throw new EngineError('NOT_FOUND', `No webhook ${event.webhookId}.`);
    const listing = event.parsed as ParsedListing;
    const body = event.payload as ExecuteWebhookBody;
    const meta = metaOf(hook.routes);
    const started = event.receivedAt.getTime();
    const result: Record<string, unknown> = {};
    let status = 'processed';
    let reason: string | null = event.reason;

    if (event.status !== 'skipped' && listing.imageUrl) {
      try {
        const img = await this.image(eventId, listing.imageUrl, signal);
        const dupKey = `monitors:image:${hook.id}:${img.sha256}`;
        const seen = await this.store.kv.get(dupKey);
        if (seen !== undefined && seen !== eventId) {
          await this.store.webhookEvents.update(eventId, { status: 'duplicate', reason: 'same image posted within the de-duplication window' });
          this.metrics.events.inc({ webhook: hook.id, outcome: 'duplicate' });
          return { eventId, status: 'duplicate' };
        }
        await this.store.kv.set(dupKey, eventId, this.options.dedupeWindowMs);
        const scored = await this.score(img.png, hook.guildId ?? undefined);
        Object.assign(result, scored.summary, { imageSha: img.sha256 });
        if (scored.heatmap) {
          await this.store.kv.set(`monitors:heatmap:${eventId}`, scored.heatmap.toString('base64'), 7 * 24 * 3600_000);
          result.heatmap = `heatmap:${eventId}`;
        }
        // The study's definition: resale-listed means hyped. Keep the image with the listing's metadata.
        const stored = await this.store.images.put({
          bytes: img.png,
          width: img.width,
          height: img.height,
          format: 'png',
          source: `monitor:${(hook.name ?? listing.monitor ?? hook.id).slice(0, 60)}`,
          ...(listing.name ? { name: listing.name } : {}),
          meta: { sku: listing.sku, price: listing.price, url: listing.url, webhookId: hook.id, eventId },
          ...(hook.guildId ? { guildId: hook.guildId } : {}),
        });
        await this.store.labels.add({ imageSha: stored.sha256, task: 'hype', value: 'hyped', by: `monitor:${hook.id}`, origin: 'monitor', ...(hook.guildId ? { guildId: hook.guildId } : {}) });
        if (listing.brand) {
          await this.store.labels.add({ imageSha: stored.sha256, task: 'brand', value: listing.brand, by: `monitor:${hook.id}`, origin: 'monitor', ...(hook.guildId ? { guildId: hook.guildId } : {}) });
        }
      } catch (err) {
        const e = toEngineError(err);
        if (e.code === 'INTERNAL' || e.code === 'UNAVAILABLE' || e.code === 'TIMEOUT') throw err;
        status = 'rejected';
        reason = `${e.code}: ${e.message}`;
      }
    }

    const hypeProbability = typeof result.hypeProbability === 'number' ? result.hypeProbability : null;
    const brand = (result.brand as string | undefined) ?? listing.brand;
    const targets = matchRoutes(meta.routes, { name: listing.name, brand, hypeProbability }, hook.channelId);
    result.routes = targets;
    const poster = this.engine.service<ChannelPoster>('channelPoster');
    if (poster) {
      const heatmap = typeof result.heatmap === 'string' ? await this.store.kv.get(`monitors:heatmap:${eventId}`) : undefined;
      const message = enrich(body, result, typeof heatmap === 'string' ? Buffer.from(heatmap, 'base64') : undefined);
      const delivered: string[] = [];
      for (const t of targets) {
        const posted = await poster.post(t.channel, {
          ...message,
          ...(t.role ? { content: `<@&${t.role}> ${message.content ?? ''}`.trim(), allowedRoles: [t.role] } : {}),
        });
        delivered.push(posted.id);
      }
      result.delivered = delivered;
    } else {
      result.delivered = [];
      result.note = 'No Discord token configured: the enriched result is available at GET /api/webhooks/:id/:token/events.';
    }
    await this.store.webhookEvents.update(eventId, { status, reason, result });
    this.metrics.events.inc({ webhook: hook.id, outcome: status });
    this.metrics.processSeconds.observe({ webhook: hook.id }, (Date.now() - started) / 1000);
    return { eventId, status, ...result };
  }

  /** Score an image with the `hype` and `brand` commands, through the engine like any caller. */
  private async score(png: Buffer, guildId: string | undefined): Promise<{ summary: Record<string, unknown>; heatmap?: Buffer }> {
    const ctx = this.engine.createContext({ transport: 'webhook', caller: { id: 'webhook' }, ...(guildId ? { guildId } : {}) });
    const image = { kind: 'buffer' as const, data: png, name: 'listing.png' };
    const [hype, brand] = [await this.engine.invoke('hype', { image }, ctx), await this.engine.invoke('brand', { image }, ctx)];
    const summary: Record<string, unknown> = {};
    let heatmap: Buffer | undefined;
    if (hype.ok) {
      const d = hype.reply.data ?? {};
      summary.hypeLabel = d.label;
      summary.hypeProbability = d.probability;
      heatmap = hype.reply.images?.[0]?.png;
    } else {
      if (hype.error.code !== 'UNKNOWN_COMMAND' && hype.error.code !== 'MODEL_MISSING') throw hype.error;
      summary.hypeError = hype.error.toJSON();
    }
    if (brand.ok) {
      const d = brand.reply.data ?? {};
      summary.brand = d.label;
      summary.brandProbabilities = d.probabilities;
    } else {
      if (brand.error.code !== 'UNKNOWN_COMMAND' && brand.error.code !== 'MODEL_MISSING') throw brand.error;
      summary.brandError = brand.error.toJSON();
    }
    return heatmap ? { summary, heatmap } : { summary };
  }

  /** Re-enqueue events accepted but never finished (a worker died, Redis lost a job). */
  async recover(olderThanMs = 60_000): Promise<number> {
    const pending = await this.store.webhookEvents.list({ status: 'received', limit: 500 });
    let n = 0;
    for (const e of pending) {
      if (Date.now() - e.receivedAt.getTime() < olderThanMs) continue;
      await this.engine.services.jobs.enqueue(PROCESS_JOB, { eventId: e.id }, { jobId: `monitor-event-${e.id}-r${Date.now()}` });
      n++;
    }
    if (n > 0) this.logger.info('re-enqueued webhook events', { count: n });
    return n;
  }

  /** Counts by status per webhook. */
  async stats(webhookId?: string): Promise<{ webhooks: { id: string; name: string | null; channelId: string; counts: Record<string, number> }[] }> {
    const hooks = await this.store.webhooks.list({ includeRevoked: false });
    const out = [];
    for (const h of hooks.filter((w) => !webhookId || w.id === webhookId)) {
      const events = await this.store.webhookEvents.list({ webhookId: h.id, limit: 1000 });
      const counts: Record<string, number> = { total: events.length };
      for (const e of events) counts[e.status] = (counts[e.status] ?? 0) + 1;
      out.push({ id: h.id, name: h.name, channelId: h.channelId, counts });
    }
    return { webhooks: out };
  }
}

const HYPE_COLOR = 0xff5a1f;

/** The original embed plus a "solescope" field and the heatmap thumbnail. */
export function enrich(body: ExecuteWebhookBody, result: Record<string, unknown>, heatmap: Buffer | undefined): OutgoingMessage {
  const embeds = (body.embeds ?? []).map((e) => ({ ...e })) as Record<string, unknown>[];
  const first = embeds[0] ?? { title: body.content?.slice(0, 256) ?? 'New listing' };
  const parts: string[] = [];
  if (typeof result.hypeProbability === 'number') parts.push(`Hype **${Math.round(result.hypeProbability * 100)}%** (${String(result.hypeLabel)})`);
  if (typeof result.brand === 'string') parts.push(`Brand **${result.brand}**`);
  if (parts.length === 0) parts.push('not scored');
  const fields = [...((first.fields as unknown[] | undefined) ?? [])].slice(0, 24);
  fields.push({ name: 'solescope', value: `${parts.join(' · ')}\n-# design-hype opinion, not a legit check`, inline: false });
  first.fields = fields;
  if (heatmap) first.thumbnail = { url: 'attachment://heatmap.png' };
  if (first.color === undefined) first.color = HYPE_COLOR;
  embeds[0] = first;
  return {
    ...(body.content ? { content: body.content } : {}),
    embeds,
    ...(heatmap ? { files: [{ name: 'heatmap.png', data: heatmap }] } : {}),
  };
}
