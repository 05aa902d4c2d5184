/**
 * The resale-monitor webhook endpoint, compatible with Discord's Execute Webhook so a monitor configured
 * with a Discord webhook URL works by changing only the host:
 *
 * - `POST /api/webhooks/:id/:token` — JSON or multipart (`payload_json` + `files[n]`); `?wait=true`
 *   answers with a message-like JSON, otherwise 204, as Discord does.
 * - `POST /api/webhooks/:id` — for integrations that sign: `X-Solescope-Signature: sha256=<hmac>` over
 *   `<timestamp>.<raw body>` and `X-Solescope-Timestamp` (unix seconds; older than 5 min is refused).
 * - `GET /api/webhooks/:id/:token/events` — newest first: received, parsed fields, hype, brand, heatmap,
 *   status, reason; `…/events/:eventId/heatmap.png` serves a heatmap.
 *
 * The adapter only authenticates, rate-limits and hands the body to the `monitors` service; scoring runs
 * as a job, so acknowledging never waits for ML.
 */
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import multer from 'multer';
import { EngineError, toEngineError, type Engine } from '../engine/index.ts';
import type { IngestFile, IngestResult } from '../plugins/monitors/service.ts';
import { httpError } from './http.ts';

const MAX_BODY_BYTES = 8 * 1024 * 1024;

// Discord's JSON error codes, so monitors that read them behave as they would with Discord.
const DISCORD_CODES: Partial<Record<string, number>> = { UNAUTHORIZED: 50027, BAD_INPUT: 50035, TOO_LARGE: 40005, NOT_FOUND: 10015 };

function sendError(res: Response, err: unknown): void {
  const error = err instanceof EngineError ? err : httpError(err);
  const body: Record<string, unknown> = { ok: false, error: error.toJSON(), message: error.message, code: DISCORD_CODES[error.code] ?? 0 };
  if (error.code === 'RATE_LIMITED') {
    const retryAfter = Math.max(0.001, Number(error.details.retryAfterMs ?? 1000) / 1000);
    res.setHeader('Retry-After', String(Math.ceil(retryAfter)));
    res.setHeader('X-RateLimit-Remaining', '0');
    res.setHeader('X-RateLimit-Scope', 'user');
    Object.assign(body, { retry_after: retryAfter, global: false });
  }
  res.status(error.spec.status).json(body);
}

function messageLike(r: IngestResult): Record<string, unknown> {
  return {
    id: String(r.eventId),
    type: 0,
    channel_id: r.channelId,
    webhook_id: r.webhookId,
    content: r.body.content ?? '',
    embeds: r.body.embeds ?? [],
    timestamp: new Date().toISOString(),
    solescope: { status: r.status, ...(r.reason ? { reason: r.reason } : {}) },
  };
}

/** Build the webhook router for an engine with the `monitors` plugin registered. */
export function createWebhookRouter(engine: Engine): Router {
  const router = express.Router();
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: MAX_BODY_BYTES, files: 10, fields: 10, fieldSize: MAX_BODY_BYTES } });
  const monitors = () => {
    const m = engine.services.monitors as (typeof engine.services)['monitors'] | undefined;
    if (!m) throw new EngineError('UNAVAILABLE', 'The monitors plugin is not loaded.');
    return m;
  };

  const body = (req: Request, res: Response, next: NextFunction): void => {
    const type = req.headers['content-type'] ?? '';
    if (/^application\/json\b/i.test(type)) express.json({ limit: MAX_BODY_BYTES })(req, res, next);
    else if (/^multipart\/form-data\b/i.test(type)) upload.any()(req, res, next);
    else next(new EngineError('UNSUPPORTED_MEDIA_TYPE', 'Send application/json or multipart/form-data.'));
  };

  const accept = async (req: Request, res: Response, hook: { id: string; channelId: string; name: string | null }, payload: unknown, files: IngestFile[]) => {
    const result = await monitors().ingest(hook, payload, files);
    if (req.query.wait === 'true' || req.query.wait === '1') res.status(200).json(messageLike(result));
    else res.status(204).end();
  };

  router.post('/:id/:token', async (req, res, next) => {
    try {
      // Authenticate and rate-limit before reading a large body.
      const hook = await monitors().authenticate(String(req.params.id), String(req.params.token));
      await monitors().rateLimit(hook);
      res.locals.hook = hook;
      next();
    } catch (err) {
      sendError(res, err);
    }
  }, body, async (req, res) => {
    try {
      const hook = res.locals.hook as { id: string; channelId: string; name: string | null };
      let payload: unknown = req.body;
      const files: IngestFile[] = [];
      if (/^multipart\//i.test(req.headers['content-type'] ?? '')) {
        const fields = (req.body ?? {}) as Record<string, string>;
        try {
          payload = fields.payload_json ? JSON.parse(fields.payload_json) : { content: fields.content, username: fields.username };
        } catch {
          throw new EngineError('BAD_INPUT', 'payload_json is not valid JSON.');
        }
        for (const f of (req.files ?? []) as Express.Multer.File[]) {
          files.push({ name: f.originalname.replace(/[^\w.-]/g, '_').slice(0, 100) || 'file', data: f.buffer, contentType: f.mimetype });
        }
      }
      await accept(req, res, hook, payload, files);
    } catch (err) {
      sendError(res, err);
    }
  });

  router.post('/:id', express.raw({ type: () => true, limit: MAX_BODY_BYTES }), async (req, res) => {
    try {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const hook = await monitors().authenticateSigned(String(req.params.id), req.header('x-solescope-timestamp'), req.header('x-solescope-signature'), raw);
      await monitors().rateLimit(hook);
      let payload: unknown;
      try {
        payload = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new EngineError('BAD_INPUT', 'The body is not valid JSON.');
      }
      await accept(req, res, hook, payload, []);
    } catch (err) {
      sendError(res, err);
    }
  });

  router.get('/:id/:token/events', async (req, res) => {
    try {
      const hook = await monitors().authenticate(String(req.params.id), String(req.params.token));
      const limit = Math.min(200, Math.max(1, Number(req.query.limit ?? 50) || 50));
      const events = await engine.services.store.webhookEvents.list({ webhookId: hook.id, limit });
      res.json({
        ok: true,
        events: events.map((e) => {
          const result = (e.result ?? {}) as Record<string, unknown>;
          return {
            id: e.id,
            receivedAt: e.receivedAt.toISOString(),
            status: e.status,
            reason: e.reason,
            parsed: e.parsed,
            hype: typeof result.hypeProbability === 'number' ? { label: result.hypeLabel, probability: result.hypeProbability } : null,
            brand: typeof result.brand === 'string' ? { label: result.brand, probabilities: result.brandProbabilities } : null,
            heatmap: result.heatmap ? `${req.baseUrl}/${hook.id}/${String(req.params.token)}/events/${e.id}/heatmap.png` : null,
            routes: result.routes ?? null,
            delivered: result.delivered ?? null,
          };
        }),
      });
    } catch (err) {
      sendError(res, err);
    }
  });

  router.get('/:id/:token/events/:eventId/heatmap.png', async (req, res) => {
    try {
      const hook = await monitors().authenticate(String(req.params.id), String(req.params.token));
      const eventId = Number(req.params.eventId);
      const event = await engine.services.store.webhookEvents.get(eventId);
      const png = event && event.webhookId === hook.id ? await engine.services.store.kv.get(`monitors:heatmap:${eventId}`) : undefined;
      if (typeof png !== 'string') throw new EngineError('NOT_FOUND', 'No heatmap for that event.');
      res.type('png').send(Buffer.from(png, 'base64'));
    } catch (err) {
      sendError(res, err);
    }
  });

  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => sendError(res, toEngineError(err) === err ? err : httpError(err)));
  return router;
}
