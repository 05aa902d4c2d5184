/**
 * Parsing what resale monitors post. Monitors speak Discord's Execute-Webhook JSON; each names its
 * fields a little differently ("💰 Price", "Lowest Ask", "Style Code", "Sizes [ATC]"), so fields are
 * matched on a normalised key against small synonym lists, and values are cleaned of markdown.
 */
import { distance } from 'fastest-levenshtein';
import { z } from 'zod';

// Discord's own bounds for webhook messages (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
const embedFieldSchema = z.object({
  name: z.string().max(256),
  value: z.string().max(1024),
  inline: z.boolean().optional(),
});
const embedSchema = z
  .object({
    title: z.string().max(256).optional(),
    type: z.string().optional(),
    description: z.string().max(4096).optional(),
    url: z.string().max(2048).optional(),
    timestamp: z.string().max(64).optional(),
    color: z.number().int().min(0).max(0xffffff).optional(),
    footer: z.object({ text: z.string().max(2048), icon_url: z.string().max(2048).optional() }).optional(),
    image: z.object({ url: z.string().max(2048) }).passthrough().optional(),
    thumbnail: z.object({ url: z.string().max(2048) }).passthrough().optional(),
    author: z.object({ name: z.string().max(256), url: z.string().max(2048).optional(), icon_url: z.string().max(2048).optional() }).passthrough().optional(),
    fields: z.array(embedFieldSchema).max(25).optional(),
  })
  .passthrough();

/** The Execute-Webhook body (the subset monitors use), bounded as Discord bounds it. */
export const executeWebhookSchema = z
  .object({
    content: z.string().max(2000).optional(),
    username: z.string().max(80).optional(),
    avatar_url: z.string().max(2048).optional(),
    tts: z.boolean().optional(),
    embeds: z.array(embedSchema).max(10).optional(),
    allowed_mentions: z.unknown().optional(),
    attachments: z.array(z.unknown()).max(10).optional(),
    flags: z.number().int().optional(),
    thread_name: z.string().max(100).optional(),
  })
  .passthrough()
  .superRefine((body, ctx) => {
    const total = (body.embeds ?? []).reduce((n, e) => {
      const fields = (e.fields ?? []).reduce((m, f) => m + f.name.length + f.value.length, 0);
      return n + (e.title?.length ?? 0) + (e.description?.length ?? 0) + (e.footer?.text.length ?? 0) + (e.author?.name.length ?? 0) + fields;
    }, 0);
    if (total > 6000) ctx.addIssue({ code: 'custom', message: 'embeds exceed 6000 characters in total' });
    if (!body.content && (body.embeds?.length ?? 0) === 0 && (body.attachments?.length ?? 0) === 0) {
      ctx.addIssue({ code: 'custom', message: 'Cannot send an empty message' });
    }
  });

/** A validated Execute-Webhook body. */
export type ExecuteWebhookBody = z.output<typeof executeWebhookSchema>;

/** A price as posted: amount, currency when recognisable, and the raw text. */
export interface Price {
  readonly amount: number;
  readonly currency: string | null;
  readonly raw: string;
}

/** What solescope understands of one listing. */
export interface ParsedListing {
  readonly name: string | null;
  readonly url: string | null;
  /** The image to score: embed image, else thumbnail, else `attachment://<file>` of an uploaded file. */
  readonly imageUrl: string | null;
  readonly price: Price | null;
  readonly retail: Price | null;
  readonly lowestAsk: Price | null;
  readonly sku: string | null;
  readonly sizes: readonly string[];
  readonly releaseDate: string | null;
  readonly region: string | null;
  readonly site: string | null;
  readonly brand: 'jordan' | 'nike' | 'adidas' | 'other' | null;
  readonly monitor: string | null;
}

/** Lowercase, strip emoji/punctuation, collapse spaces: "💰 Lowest-Ask:" → "lowest ask". */
export function normaliseKey(key: string): string {
  return key
    .normalize('NFKD')
    .replace(/\p{Extended_Pictographic}|\p{M}/gu, '')
    .replace(/<a?:\w+:\d+>/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .trim();
}

const FIELD_SYNONYMS: Record<'price' | 'retail' | 'lowestAsk' | 'sku' | 'sizes' | 'releaseDate' | 'region' | 'site', readonly string[]> = {
  price: ['price', 'resale', 'resale price', 'resell', 'resell price', 'sale price', 'current price', 'new price'],
  retail: ['retail', 'retail price', 'rrp', 'msrp', 'original price'],
  lowestAsk: ['lowest ask', 'lowestask', 'ask', 'lowest price', 'stockx ask', 'goat ask'],
  sku: ['sku', 'style', 'style code', 'stylecode', 'pid', 'product id', 'product code', 'model', 'sku pid'],
  sizes: ['sizes', 'size', 'available sizes', 'sizes atc', 'atc', 'stock', 'sizes stock', 'size stock', 'restocked sizes', 'sizes available'],
  releaseDate: ['release date', 'release', 'drop date', 'launch date', 'launch', 'date', 'release time', 'drop'],
  region: ['region', 'country', 'locale', 'market'],
  site: ['site', 'store', 'retailer', 'shop', 'website'],
};

function fieldKind(name: string): keyof typeof FIELD_SYNONYMS | undefined {
  const key = normaliseKey(name);
  for (const [kind, names] of Object.entries(FIELD_SYNONYMS) as [keyof typeof FIELD_SYNONYMS, readonly string[]][]) {
    if (names.includes(key)) return kind;
  }
  // "Price (USD)", "Sizes & Stock" and the like: match on the leading word.
  const first = key.split(' ')[0] ?? '';
  for (const [kind, names] of Object.entries(FIELD_SYNONYMS) as [keyof typeof FIELD_SYNONYMS, readonly string[]][]) {
    if (names.some((n) => n.split(' ').length === 1 && n === first)) return kind;
  }
  return undefined;
}

/** Markdown link `[8.5](https://atc…)` → `8.5`; strip `**`, `__`, backticks and `||`. */
export function stripMarkdown(text: string): string {
  return text
    .replace(/\[([^\]]*)\]\((?:<)?[^)]*(?:>)?\)/g, '$1')
    .replace(/(\*\*|__|~~|\|\||`)/g, '')
    .trim();
}

const CURRENCIES: readonly [RegExp, string][] = [
  [/\$|usd|us\$/i, 'USD'],
  [/€|eur/i, 'EUR'],
  [/£|gbp/i, 'GBP'],
  [/¥|jpy|yen/i, 'JPY'],
  [/cad|c\$/i, 'CAD'],
  [/aud|a\$/i, 'AUD'],
  [/chf/i, 'CHF'],
];

/** "$220", "€180,00", "USD 1,250.50", "N/A" → Price or null. */
export function parsePrice(raw: string): Price | null {
  const text = stripMarkdown(raw);
  const m = text.match(/(\d{1,3}(?:[.,\s]\d{3})+|\d+)(?:[.,](\d{1,2}))?/);
  if (!m) return null;
  const whole = (m[1] ?? '').replace(/[.,\s]/g, '');
  const amount = Number(`${whole}${m[2] ? `.${m[2]}` : ''}`);
  if (!Number.isFinite(amount)) return null;
  const currency = CURRENCIES.find(([re]) => re.test(text))?.[1] ?? null;
  return { amount, currency, raw: text };
}

/** Sizes from a field value: links, lists separated by newlines, commas, pipes or bullets. */
export function parseSizes(raw: string): string[] {
  const text = stripMarkdown(raw);
  const parts = text
    .split(/\n|,|\||•|·|;|\s{2,}/)
    .map((p) => p.replace(/\(\s*\d+\s*\)|\[\s*\d+\s*\]|x\s*\d+$|stock:?\s*\d+/gi, '').replace(/\b(us|uk|eu|size)\b/gi, (w) => w.toUpperCase()).trim())
    .filter((p) => p.length > 0 && p.length <= 24 && /\d/.test(p));
  return [...new Set(parts.map((p) => p.replace(/\s+/g, ' ')))];
}

/** `<t:1700000000:F>` (Discord timestamp), ISO strings or plain dates → ISO 8601, else the raw text. */
export function parseDate(raw: string): string | null {
  const text = stripMarkdown(raw);
  const ts = text.match(/<t:(\d{1,12})(?::[tTdDfFR])?>/);
  if (ts) return new Date(Number(ts[1]) * 1000).toISOString();
  const parsed = Date.parse(text);
  if (!Number.isNaN(parsed)) return new Date(parsed).toISOString();
  return text.length > 0 ? text.slice(0, 64) : null;
}

const BRAND_WORDS: Record<'jordan' | 'nike' | 'adidas' | 'other', readonly string[]> = {
  jordan: ['jordan', 'jordans', 'aj1', 'aj4', 'aj3', 'aj11', 'jumpman'],
  nike: ['nike', 'dunk', 'dunks', 'airmax', 'af1', 'swoosh', 'sb', 'foamposite', 'vapormax', 'cortez', 'blazer', 'lebron', 'kobe', 'hyperdunk'],
  adidas: ['adidas', 'yeezy', 'yzy', 'samba', 'gazelle', 'ultraboost', 'nmd', 'superstar', 'campus', 'forum', 'stan', 'spezial'],
  other: ['balance', 'asics', 'puma', 'reebok', 'converse', 'vans', 'salomon', 'hoka', 'saucony', 'crocs', 'timberland', 'birkenstock', 'mizuno', 'onitsuka', 'brooks'],
};

/**
 * Brand from a listing name, as the study took it from resale names. Jordan wins over Nike ("Nike Air
 * Jordan 1" is a Jordan). Tokens of 5+ letters match with one typo ("adiddas", "jordon").
 */
export function brandFromName(name: string | null | undefined): ParsedListing['brand'] {
  if (!name) return null;
  const tokens = normaliseKey(name).split(' ');
  const joined = tokens.join('');
  const has = (words: readonly string[]) =>
    words.some((w) => tokens.includes(w) || (w.length >= 5 && tokens.some((t) => t.length >= 5 && distance(t, w) <= 1)));
  if (has(BRAND_WORDS.jordan) || /airjordan/.test(joined)) return 'jordan';
  if (has(BRAND_WORDS.nike) || /air ?max|air ?force/.test(tokens.join(' '))) return 'nike';
  if (has(BRAND_WORDS.adidas)) return 'adidas';
  if (has(BRAND_WORDS.other) || /new balance|on running/.test(tokens.join(' '))) return 'other';
  return null;
}

/** Understand one Execute-Webhook body. `fileNames` are uploaded files (multipart `files[n]`). */
export function parseListing(body: ExecuteWebhookBody, fileNames: readonly string[] = []): ParsedListing {
  const embed = body.embeds?.[0];
  const fields: Partial<Record<keyof typeof FIELD_SYNONYMS, string>> = {};
  for (const f of embed?.fields ?? []) {
    const kind = fieldKind(f.name);
    if (kind && fields[kind] === undefined) fields[kind] = f.value;
  }
  const firstLine = body.content?.split('\n').find((l) => l.trim().length > 0);
  const name = stripMarkdown(embed?.title ?? embed?.author?.name ?? firstLine ?? '') || null;
  const attachment = fileNames[0] ? `attachment://${fileNames[0]}` : null;
  const priceRaw = fields.price ?? fields.lowestAsk;
  return {
    name,
    url: embed?.url ?? null,
    imageUrl: embed?.image?.url ?? embed?.thumbnail?.url ?? attachment,
    price: priceRaw ? parsePrice(priceRaw) : null,
    retail: fields.retail ? parsePrice(fields.retail) : null,
    lowestAsk: fields.lowestAsk ? parsePrice(fields.lowestAsk) : null,
    sku: fields.sku ? stripMarkdown(fields.sku).split(/\s|\n/)[0]?.toUpperCase() ?? null : null,
    sizes: fields.sizes ? parseSizes(fields.sizes) : [],
    releaseDate: fields.releaseDate ? parseDate(fields.releaseDate) : null,
    region: fields.region ? stripMarkdown(fields.region).slice(0, 40) : null,
    site: fields.site ? stripMarkdown(fields.site).slice(0, 80) : null,
    brand: brandFromName(name),
    monitor: body.username ?? embed?.footer?.text ?? null,
  };
}

/** The de-duplication key of a listing: same SKU, same size set, same price → same drop. */
export function listingKey(p: ParsedListing): string | null {
  if (!p.sku && !p.name) return null;
  const sizes = [...p.sizes].sort().join(',');
  return `${p.sku ?? p.name?.toLowerCase()}|${sizes}|${p.price?.amount ?? ''}`;
}
