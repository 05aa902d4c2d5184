/**
 * The queue dashboard: bull-board at `/admin/queues`, behind the admin token (`SOLESCOPE_ADMIN_TOKEN`),
 * given as `Authorization: Bearer <token>` or once as `?token=<token>` (which sets an HttpOnly cookie
 * scoped to the dashboard, so the UI's own asset and API requests carry it). Without a token configured
 * the dashboard refuses everyone: queue data and retry/remove buttons are admin-only.
 */
import { timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
// The one transport-shaped import of jobs/: bull-board's express adapter IS the dashboard's mount point,
// and the lead's HTTP app factory calls `mountQueueDashboard` from here (team brief). Express itself is
// only described structurally below, so jobs/ does not depend on it.
// eslint-disable-next-line no-restricted-imports
import { ExpressAdapter } from '@bull-board/express';
import type { BullJobRunner } from './runner.ts';

/** The parts of an express request the guard reads. */
interface Request {
  readonly headers: { readonly authorization?: string | undefined; readonly cookie?: string | undefined };
  readonly query: Record<string, unknown>;
}
/** The parts of an express response the guard writes. */
interface Response {
  status(code: number): { json(body: unknown): unknown };
  setHeader(name: string, value: string): unknown;
}
type NextFunction = (err?: unknown) => void;
type Handler = (req: Request, res: Response, next: NextFunction) => void;
/** An express application (or router): what `mountQueueDashboard` needs of it. */
export interface MountableApp {
  use(path: string, ...handlers: Handler[]): unknown;
}

/** Where the dashboard is mounted. */
export const DASHBOARD_PATH = '/admin/queues';
const COOKIE = 'solescope_admin';

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieToken(req: Request): string | undefined {
  const header = req.headers.cookie ?? '';
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

/** The admin-token check used in front of the dashboard (exported for the HTTP app's other admin routes). */
export function adminTokenGuard(adminToken: string | undefined) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim();
    const query = typeof req.query.token === 'string' ? req.query.token : undefined;
    const given = bearer ?? query ?? cookieToken(req);
    if (!adminToken || !given || !same(given, adminToken)) {
      res.status(adminToken ? 401 : 403).json({
        ok: false,
        error: adminToken
          ? { code: 'UNAUTHORIZED', message: 'The queue dashboard needs the admin token (Authorization: Bearer … or ?token=…).' }
          : { code: 'FORBIDDEN', message: 'The queue dashboard is disabled: set SOLESCOPE_ADMIN_TOKEN to enable it.' },
      });
      return;
    }
    if (query) {
      res.setHeader('Set-Cookie', `${COOKIE}=${encodeURIComponent(query)}; Path=${DASHBOARD_PATH}; HttpOnly; SameSite=Strict`);
    }
    next();
  };
}

/**
 * Mount bull-board for every queue of the runner at `/admin/queues` on an express app. Call it from the
 * HTTP app factory: `mountQueueDashboard(app, runner, config.SOLESCOPE_ADMIN_TOKEN)`.
 */
export function mountQueueDashboard(app: MountableApp, runner: BullJobRunner, adminToken: string | undefined): void {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: runner.allQueues().map((q) => new BullMQAdapter(q)),
    // @bull-board/express 9.10.1 nests its own @bull-board/api 9.10.1 next to our 9.10.2: same runtime
    // contract, separately declared private fields, hence the cast.
    serverAdapter: serverAdapter as unknown as Parameters<typeof createBullBoard>[0]['serverAdapter'],
    options: { uiConfig: { boardTitle: 'solescope jobs' } },
  });
  app.use(DASHBOARD_PATH, adminTokenGuard(adminToken), serverAdapter.getRouter() as Handler);
}
