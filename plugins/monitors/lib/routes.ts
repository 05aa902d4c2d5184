/**
 * Routing rules: where an enriched drop goes. A rule matches on keywords in the name, the brand, and a
 * minimum hype probability; every matching rule's channel gets the message (once), with its optional
 * role ping. No matching rule → the webhook's own channel.
 */
import { z } from 'zod';
import { EngineError } from '../../../engine/index.ts';

/** One routing rule. */
export const routeSchema = z
  .object({
    channel: z.string().regex(/^\d{5,25}$/, 'channel must be a Discord channel id'),
    keywords: z.array(z.string().min(1).max(50)).max(20).optional(),
    brands: z.array(z.enum(['jordan', 'nike', 'adidas', 'other'])).max(4).optional(),
    minHype: z.number().min(0).max(1).optional(),
    role: z.string().regex(/^\d{5,25}$/, 'role must be a Discord role id').optional(),
  })
  .strict();

/** A routing rule. */
export type Route = z.output<typeof routeSchema>;

/**
 * Parse routes from JSON (`[{"channel":"1","keywords":["dunk"]}]`) or the compact CLI form
 * `channel=123,keyword=dunk+jordan,brand=nike,min-hype=0.8,role=456; channel=789,brand=adidas`.
 */
export function parseRoutes(text: string | undefined): Route[] {
  if (!text || text.trim() === '') return [];
  const trimmed = text.trim();
  let raw: unknown;
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    try {
      raw = JSON.parse(trimmed);
    } catch {
      throw new EngineError('BAD_INPUT', 'route: not valid JSON.');
    }
    if (!Array.isArray(raw)) raw = [raw];
  } else {
    raw = trimmed
      .split(';')
      .map((r) => r.trim())
      .filter(Boolean)
      .map((rule) => {
        const out: Record<string, unknown> = {};
        for (const part of rule.split(',')) {
          const [k, v] = part.split('=').map((s) => s.trim());
          if (!k || v === undefined) throw new EngineError('BAD_INPUT', `route: "${part}" is not key=value.`);
          const key = k.toLowerCase();
          if (key === 'channel') out.channel = v;
          else if (key === 'keyword' || key === 'keywords') out.keywords = v.split('+').map((s) => s.trim()).filter(Boolean);
          else if (key === 'brand' || key === 'brands') out.brands = v.split('+').map((s) => s.trim().toLowerCase());
          else if (key === 'min-hype' || key === 'minhype') out.minHype = Number(v);
          else if (key === 'role') out.role = v;
          else throw new EngineError('BAD_INPUT', `route: unknown key "${k}" (channel, keyword, brand, min-hype, role).`);
        }
        return out;
      });
  }
  const parsed = z.array(routeSchema).max(20).safeParse(raw);
  if (!parsed.success) {
    throw new EngineError('BAD_INPUT', `route: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** Where one scored drop goes: channel → optional role to ping. */
export function matchRoutes(
  routes: readonly Route[],
  listing: { name: string | null; brand: string | null; hypeProbability: number | null },
  defaultChannel: string,
): { channel: string; role?: string }[] {
  const name = (listing.name ?? '').toLowerCase();
  const out = new Map<string, string | undefined>();
  for (const r of routes) {
    if (r.keywords && !r.keywords.some((k) => name.includes(k.toLowerCase()))) continue;
    if (r.brands && (!listing.brand || !r.brands.includes(listing.brand as Route['brands'] extends (infer B)[] | undefined ? B : never))) continue;
    if (r.minHype !== undefined && (listing.hypeProbability === null || listing.hypeProbability < r.minHype)) continue;
    if (!out.has(r.channel) || (!out.get(r.channel) && r.role)) out.set(r.channel, r.role);
  }
  if (out.size === 0) out.set(defaultChannel, undefined);
  return [...out.entries()].map(([channel, role]) => (role ? { channel, role } : { channel }));
}
