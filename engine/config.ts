/**
 * Configuration from the environment, validated once at start. Each bad value gets its own clear line,
 * and the process refuses to start rather than failing later in a handler.
 */
import path from 'node:path';
import { z } from 'zod';
import { EngineError } from './errors.ts';

const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();

const urlString = (protocols: readonly string[], example: string) =>
  z
    .string()
    .trim()
    .optional()
    .transform((v) => (v === '' ? undefined : v))
    .refine((v) => v === undefined || (URL.canParse(v) && protocols.includes(new URL(v).protocol)), {
      message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')} (e.g. ${example})`,
    });

/** The environment schema (one source for validation, the README table and `status`). */
export const configSchema = z.object({
  DISCORD_TOKEN: optionalString,
  DISCORD_APPLICATION_ID: z
    .string()
    .trim()
    .optional()
    .transform((v) => (v === '' ? undefined : v))
    .refine((v) => v === undefined || /^\d{5,25}$/.test(v), { message: 'must be a numeric Discord snowflake' }),
  DISCORD_API_URL: urlString(['http:', 'https:'], 'https://discord.com/api'),
  DISCORD_CDN_URL: urlString(['http:', 'https:'], 'https://cdn.discordapp.com'),
  DISCORD_GUILD_ID: optionalString,
  DISCORD_MODERATOR_ROLE: optionalString,
  DISCORD_MODLOG_CHANNEL: optionalString,
  REDIS_URL: urlString(['redis:', 'rediss:'], 'redis://127.0.0.1:6379'),
  DATABASE_URL: z
    .string()
    .trim()
    .optional()
    .transform((v) => (v === '' ? undefined : v))
    .refine((v) => v === undefined || /^(postgres|postgresql|sqlite|file):/.test(v) || !v.includes('://'), {
      message: 'must be postgres://…, sqlite:<path> or a file path',
    }),
  SOLESCOPE_DATA_DIR: z.string().trim().default('./data'),
  SOLESCOPE_ADMIN_TOKEN: optionalString,
  SOLESCOPE_ML_BACKEND: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  SOLESCOPE_INFERENCE: z.enum(['auto', 'onnx', 'tfjs']).default('auto'),
  SOLESCOPE_MAX_IMAGE_BYTES: z.coerce.number().int().positive().default(25 * 1024 * 1024),
  SOLESCOPE_MAX_IMAGE_PIXELS: z.coerce.number().int().positive().default(50_000_000),
  SOLESCOPE_ALLOW_PRIVATE_URLS: z
    .enum(['true', 'false', '1', '0', ''])
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  SOLESCOPE_WORKER: z
    .enum(['true', 'false', '1', '0', ''])
    .optional()
    .transform((v) => v !== 'false' && v !== '0'),
  LLM_PROVIDER: z.enum(['none', 'openai', 'ollama', 'anthropic']).default('none'),
  LLM_BASE_URL: urlString(['http:', 'https:'], 'http://127.0.0.1:11434'),
  LLM_MODEL: optionalString,
  LLM_API_KEY: optionalString,
  SHARDS: z
    .string()
    .trim()
    .optional()
    .transform((v) => (v === '' ? undefined : v))
    .refine((v) => v === undefined || v === 'auto' || /^\d+$/.test(v), { message: 'must be a number or "auto"' }),
  PORT: z.coerce.number().int().min(0, 'must be 0..65535').max(65535, 'must be 0..65535').default(8080),
  HOST: z.string().trim().default('0.0.0.0'),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).default('info'),
  NODE_ENV: z.string().default('development'),
});

/** Validated configuration. `dataDir` is absolute. */
export type Config = z.output<typeof configSchema> & { readonly dataDir: string };

/**
 * Validate the environment. Throws BAD_INPUT listing every bad variable, one per line, e.g.
 * `PORT: must be 0..65535 (got "70000")`.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, cwd = process.cwd()): Config {
  const known: Record<string, string | undefined> = {};
  for (const key of Object.keys(configSchema.shape)) known[key] = env[key];
  const result = configSchema.safeParse(known);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? 'env');
      const got = env[key];
      const shown = got === undefined ? '' : SECRETISH.test(key) ? ' (got a value)' : ` (got "${got.slice(0, 60)}")`;
      return `${key}: ${issue.message}${shown}`;
    });
    throw new EngineError('BAD_INPUT', `Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return { ...result.data, dataDir: path.resolve(cwd, result.data.SOLESCOPE_DATA_DIR) };
}

const SECRETISH = /TOKEN|KEY|PASSWORD|SECRET/;
