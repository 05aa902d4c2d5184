/**
 * HTTP transport (express 5), built by a factory so tests drive it without a fixed port.
 *
 * `POST /api/commands/<words…>` takes JSON or multipart (files become image options) and answers with the
 * envelope, images base64. `GET /api/commands` lists commands with their JSON Schemas; `GET /api/jobs/:id`
 * reports a job; `GET /healthz`, `/readyz`, `/metrics` are for operators.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import multer from 'multer';
import {
  ERROR_CATALOGUE,
  EngineError,
  coerceStrings,
  toEngineError,
  toJsonSchema,
  type Caller,
  type Engine,
  type Envelope,
} from '../engine/index.ts';
import { toEnvelope } from './envelope.ts';

/** Options of {@link createHttpApp}. */
export interface HttpAppOptions {
  /** Largest JSON body (default 1 MB: images travel as URLs or multipart files, not JSON). */
  readonly jsonLimitBytes?: number;
  /** Largest uploaded file (default: the engine's SOLESCOPE_MAX_IMAGE_BYTES, 25 MB). */
  readonly maxFileBytes?: number;
  /** Extra routers mounted by the composition root (webhooks, queue dashboard), by path. */
  readonly mounts?: readonly { path: string; router: Router | express.Application }[];
  /** Extra readiness checks (`/readyz`), e.g. Redis. Each returns ok + a short detail. */
  readonly readiness?: Record<string, () => Promise<{ ok: boolean; detail?: string }>>;
}

function sendError(res: Response, error: EngineError): void {
  if (error.code === 'RATE_LIMITED' && typeof error.details.retryAfterMs === 'number') {
    res.setHeader('Retry-After', String(Math.max(1, Math.ceil(error.details.retryAfterMs / 1000))));
  }
  const body: Envelope = { ok: false, error: error.toJSON() };
  res.status(error.spec.status).json(body);
}

/** Constant-time comparison of a presented token with the configured one. */
function tokenMatches(presented: string | undefined, expected: string | undefined): boolean {
  if (!presented || !expected) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function callerOf(req: Request, adminToken: string | undefined): Caller {
  const auth = req.header('authorization');
  const bearer = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
  const admin = tokenMatches(bearer, adminToken);
  const user = req.header('x-solescope-user')?.slice(0, 64);
  return {
    id: admin && user ? `http:${user}` : `http:${req.ip ?? 'unknown'}`,
    ...(admin ? { isModerator: true, isAdmin: true } : {}),
  };
}

/** Build the express app. */
export function createHttpApp(engine: Engine, options: HttpAppOptions = {}): express.Application {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');
  const maxFileBytes = options.maxFileBytes ?? engine.config.SOLESCOPE_MAX_IMAGE_BYTES;
  const upload = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: maxFileBytes, files: 4, fields: 50, fieldSize: 64 * 1024, parts: 60 },
  });

  app.use((req, res, next) => {
    const id = req.header('x-request-id')?.slice(0, 100) ?? randomUUID();
    res.locals.requestId = id;
    res.setHeader('x-request-id', id);
    const started = performance.now();
    res.on('finish', () => {
      engine.logger.info('http', {
        requestId: id,
        method: req.method,
        path: req.path,
        status: res.statusCode,
        ms: Math.round(performance.now() - started),
      });
    });
    next();
  });

  for (const mount of options.mounts ?? []) app.use(mount.path, mount.router);

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, uptimeS: Math.round((Date.now() - engine.startedAt) / 1000) });
  });

  app.get('/readyz', async (_req, res) => {
    const checks: Record<string, { ok: boolean; detail?: string }> = {};
    try {
      const store = engine.services.store;
      await store.ping();
      checks.store = { ok: true, detail: store.dialect };
    } catch (err) {
      checks.store = { ok: false, detail: toEngineError(err).message };
    }
    const jobs = await engine.services.jobs.health().catch((err: unknown) => ({ ok: false, detail: String(err) }));
    checks.queue = { ok: jobs.ok, detail: jobs.detail };
    for (const [name, check] of Object.entries(options.readiness ?? {})) {
      checks[name] = await check().catch((err: unknown) => ({ ok: false, detail: String(err) }));
    }
    const ok = Object.values(checks).every((c) => c.ok);
    res.status(ok ? 200 : 503).json({ ok, checks });
  });

  app.get('/metrics', async (_req, res) => {
    res.setHeader('content-type', engine.metrics.registry.contentType);
    res.send(await engine.metrics.registry.metrics());
  });

  app.get('/api/commands', (_req, res) => {
    res.json({
      ok: true,
      commands: [...engine.commands.values()].map((c) => ({
        name: c.definition.name,
        path: `/api/commands/${c.definition.name.replace(/ /g, '/')}`,
        description: c.definition.description,
        permissions: c.definition.permissions ?? 'everyone',
        options: c.options,
        schema: toJsonSchema(c.definition.options),
      })),
    });
  });

  app.get('/api/jobs/:id', async (req, res) => {
    const info = await engine.services.jobs.get(String(req.params.id));
    if (!info) return sendError(res, new EngineError('NOT_FOUND', `No job with id ${String(req.params.id)}.`));
    const { data: _data, ...rest } = info;
    res.json({ ok: true, job: rest });
  });

  const parseBody = (req: Request, res: Response, next: NextFunction): void => {
    const type = req.headers['content-type'] ?? '';
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) {
      req.body = {};
      return next();
    }
    if (/^application\/json\b/i.test(type)) {
      express.json({ limit: options.jsonLimitBytes ?? 1024 * 1024, strict: true })(req, res, next);
    } else if (/^multipart\/form-data\b/i.test(type)) {
      upload.any()(req, res, next);
    } else if (/^application\/x-www-form-urlencoded\b/i.test(type)) {
      express.urlencoded({ extended: false, limit: 64 * 1024 })(req, res, next);
    } else {
      next(new EngineError('UNSUPPORTED_MEDIA_TYPE', `Send application/json or multipart/form-data, not "${type || 'no content type'}".`));
    }
  };

  app.post('/api/commands/*name', parseBody, async (req, res) => {
    const words = (req.params as { name?: string | string[] }).name;
    const name = (Array.isArray(words) ? words : String(words ?? '').split('/')).filter(Boolean).join(' ');
    const registered = engine.commands.get(name);
    if (!registered) return sendError(res, new EngineError('UNKNOWN_COMMAND', `Unknown command "${name}". GET /api/commands lists them.`));
    const body: unknown = req.body ?? {};
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return sendError(res, new EngineError('BAD_INPUT', 'The request body must be a JSON object of options.'));
    }
    let input: Record<string, unknown> = { ...(body as Record<string, unknown>) };
    const isForm = !/^application\/json\b/i.test(req.headers['content-type'] ?? '');
    // Form fields arrive as strings; JSON keeps its types, so only forms are coerced.
    if (isForm) input = coerceStrings(registered.options, input);
    const files = (req.files ?? []) as Express.Multer.File[];
    const imageOptions = registered.options.filter((o) => o.kind === 'image');
    for (const file of files) {
      const target = imageOptions.find((o) => o.name === file.fieldname) ?? (files.length === 1 && imageOptions.length >= 1 && input[imageOptions[0]?.name ?? ''] === undefined ? imageOptions[0] : undefined);
      if (!target) return sendError(res, new EngineError('BAD_INPUT', `Unexpected file field "${file.fieldname}".`));
      input[target.name] = { kind: 'buffer', data: file.buffer, name: file.originalname, contentType: file.mimetype };
    }
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    const ctx = engine.createContext({
      transport: 'http',
      caller: callerOf(req, engine.config.SOLESCOPE_ADMIN_TOKEN),
      requestId: String(res.locals.requestId),
      allowLocalPaths: false,
      signal: controller.signal,
      ...(typeof req.header('x-solescope-guild') === 'string' ? { guildId: req.header('x-solescope-guild') } : {}),
    });
    const result = await engine.invoke(name, input, ctx);
    if (!result.ok) return sendError(res, result.error);
    res.json(toEnvelope(result, (img) => ({ base64: img.png.toString('base64') })));
  });

  app.use('/api', (req, res) => {
    sendError(res, new EngineError('NOT_FOUND', `No route ${req.method} ${req.originalUrl}.`));
  });

  // The one error boundary: body-parser, multer and handler failures become catalogue codes.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    sendError(res, httpError(err));
  });

  return app;
}

/** Map express/multer/body-parser failures onto the catalogue. */
export function httpError(err: unknown): EngineError {
  if (err instanceof EngineError) return err;
  if (err instanceof multer.MulterError) {
    if (err.code === 'LIMIT_FILE_SIZE') return new EngineError('TOO_LARGE', 'The uploaded file is larger than the limit.');
    return new EngineError('BAD_INPUT', `Upload refused: ${err.message}.`);
  }
  const e = err as { type?: string; status?: number; message?: string };
  if (e.type === 'entity.too.large') return new EngineError('TOO_LARGE', 'The request body is larger than the limit.');
  if (e.type === 'entity.parse.failed') return new EngineError('BAD_INPUT', 'The request body is not valid JSON.');
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
    return new EngineError('UNSUPPORTED_MEDIA_TYPE', e.message ?? 'Unsupported encoding.');
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return new EngineError('BAD_INPUT', e.message ?? 'Bad request.');
  if (/Multipart|Unexpected end of form|boundary/i.test(e.message ?? '')) return new EngineError('BAD_INPUT', 'The multipart body is malformed.');
  return toEngineError(err);
}

/** HTTP status of a catalogue code (exported for adapters that answer outside express). */
export function statusOf(code: keyof typeof ERROR_CATALOGUE): number {
  return ERROR_CATALOGUE[code].status;
}

/** Socket-level limits of the HTTP server (slow-loris defence). */
export interface ServeOptions {
  readonly port: number;
  readonly host?: string;
  /** Whole request (headers + body) must arrive within this (default 30 s). */
  readonly requestTimeoutMs?: number;
  /** Headers must arrive within this (default 10 s). */
  readonly headersTimeoutMs?: number;
}

/**
 * Listen with hardened timeouts: a client that trickles its headers or body is cut off instead of
 * holding a socket open (Node's defaults allow 5 minutes and check only every 30 s).
 */
export async function serveHttp(app: express.Application, options: ServeOptions): Promise<Server> {
  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  const server = createServer(
    {
      requestTimeout,
      headersTimeout: Math.min(options.headersTimeoutMs ?? 10_000, requestTimeout),
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(requestTimeout / 4))),
      keepAliveTimeout: 5000,
    },
    app,
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return server;
}
