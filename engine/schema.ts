/**
 * One zod schema per command; everything else is derived from it here, once:
 * the option specs every transport reads, Discord slash-command option JSON, CLI flags/positionals,
 * value coercion for string transports (CLI, multipart forms), and the JSON-Schema tool description the
 * LLM router uses. HTTP validation is the schema itself (see {@link parseInput}).
 */
import { z } from 'zod';
import { EngineError } from './errors.ts';

/** An image the user gave: a path (CLI only), an http(s) URL, or uploaded bytes. */
export type ImageRef =
  | string
  | {
      readonly kind: 'buffer';
      readonly data: Uint8Array;
      readonly name?: string | undefined;
      readonly contentType?: string | undefined;
    };

/** Marks schemas with solescope-specific kinds (inherited by `.describe()`/`.optional()` clones). */
export const kindRegistry = z.registry<{ kind: 'image' }>();

const bufferImageSchema = z.object({
  kind: z.literal('buffer'),
  data: z.custom<Uint8Array>((v) => v instanceof Uint8Array, { message: 'expected image bytes' }),
  name: z.string().optional(),
  contentType: z.string().optional(),
});

/**
 * The image option type. Transports turn their medium's image into an {@link ImageRef}: the CLI passes
 * the path or URL string, HTTP passes a URL or the uploaded file's bytes, Discord the attachment's bytes.
 */
export function imageInput(description = 'A sneaker photo: file path, http(s) URL or upload'): z.ZodType<ImageRef> {
  const schema = z
    .union([z.string().min(1, 'an image path or URL is required'), bufferImageSchema])
    .describe(description) as unknown as z.ZodType<ImageRef>;
  kindRegistry.add(schema, { kind: 'image' });
  return schema;
}

/** Kinds of option every transport understands. */
export type OptionKind = 'string' | 'integer' | 'number' | 'boolean' | 'image' | 'enum';

/** A transport-neutral description of one command option, derived from the command's schema. */
export interface OptionSpec {
  readonly name: string;
  readonly kind: OptionKind;
  readonly description: string;
  readonly required: boolean;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly defaultValue?: unknown;
  /** Position for CLI positionals (0-based), when the option is positional. */
  readonly position?: number;
}

type JsonSchema = Record<string, unknown>;

function isImageSchema(schema: z.core.$ZodType): boolean {
  return kindRegistry.get(schema as z.ZodType)?.kind === 'image';
}

/** JSON Schema of any zod schema, with image options rendered as strings (URL) for tools and docs. */
export function toJsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): JsonSchema {
  return z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    override: (ctx) => {
      if (isImageSchema(ctx.zodSchema)) {
        const description = (ctx.jsonSchema as { description?: string }).description;
        for (const key of Object.keys(ctx.jsonSchema)) delete (ctx.jsonSchema as Record<string, unknown>)[key];
        Object.assign(ctx.jsonSchema, {
          type: 'string',
          description: description ?? 'An image URL',
          'x-solescope-kind': 'image',
        });
      }
    },
  }) as JsonSchema;
}

function camelToKebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * Describe each option of an object schema. `positional` lists option names taken positionally by the
 * CLI, in order; by default every image option is positional, in declaration order.
 */
export function describeOptions(schema: z.ZodObject, positional?: readonly string[]): OptionSpec[] {
  const json = toJsonSchema(schema);
  const props = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  const specs: OptionSpec[] = [];
  const shape = schema.shape as Record<string, z.ZodType>;
  const imageNames = Object.keys(shape).filter((k) => props[k]?.['x-solescope-kind'] === 'image');
  const order = positional ?? imageNames;
  for (const [name, prop] of Object.entries(props)) {
    let kind: OptionKind;
    let choices: string[] | undefined;
    const type = prop.type;
    if (prop['x-solescope-kind'] === 'image') kind = 'image';
    else if (Array.isArray(prop.enum)) {
      kind = 'enum';
      choices = (prop.enum as unknown[]).map(String);
    } else if (type === 'integer') kind = 'integer';
    else if (type === 'number') kind = 'number';
    else if (type === 'boolean') kind = 'boolean';
    else if (type === 'string') kind = 'string';
    else {
      // Unions such as `z.union([z.literal('auto'), z.number()])` travel as strings and are parsed by zod.
      kind = 'string';
    }
    const hasDefault = Object.prototype.hasOwnProperty.call(prop, 'default');
    const pos = order.indexOf(name);
    const spec: OptionSpec = {
      name,
      kind,
      description: typeof prop.description === 'string' ? prop.description : name,
      // An option with a default is optional for the user even if zod's output type requires it.
      required: required.has(name) && !hasDefault,
      ...(choices ? { choices } : {}),
      ...(typeof prop.minimum === 'number' ? { min: prop.minimum } : {}),
      ...(typeof prop.maximum === 'number' ? { max: prop.maximum } : {}),
      ...(typeof prop.minLength === 'number' ? { minLength: prop.minLength } : {}),
      ...(typeof prop.maxLength === 'number' ? { maxLength: prop.maxLength } : {}),
      ...(hasDefault ? { defaultValue: prop.default } : {}),
      ...(pos >= 0 ? { position: pos } : {}),
    };
    specs.push(spec);
  }
  return specs;
}

/** Discord application-command option types (API v10). */
export const DiscordOptionType = {
  SUB_COMMAND: 1,
  SUB_COMMAND_GROUP: 2,
  STRING: 3,
  INTEGER: 4,
  BOOLEAN: 5,
  NUMBER: 10,
  ATTACHMENT: 11,
} as const;

/** One slash-command option as Discord's API expects it. */
export interface SlashOptionJson {
  type: number;
  name: string;
  description: string;
  required?: boolean;
  choices?: { name: string; value: string }[];
  min_value?: number;
  max_value?: number;
  min_length?: number;
  max_length?: number;
  autocomplete?: boolean;
  options?: SlashOptionJson[];
}

/** Discord option names must be lowercase `[-_a-z0-9]{1,32}`; camelCase keys become snake_case. */
export function toSlashName(name: string): string {
  return name
    .replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
    .replace(/[^-_a-z0-9]/g, '_')
    .slice(0, 32);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * Slash option JSON for one command's options. Images become attachment options, enums choices
 * (Discord allows 25), numbers carry min/max. Required options come first, as Discord demands.
 */
export function toSlashOptions(specs: readonly OptionSpec[], autocomplete: ReadonlySet<string> = new Set()): SlashOptionJson[] {
  const out = specs.map((spec): SlashOptionJson => {
    const base = {
      name: toSlashName(spec.name),
      description: clip(spec.description, 100),
      ...(spec.required ? { required: true } : {}),
    };
    switch (spec.kind) {
      case 'image':
        return { ...base, type: DiscordOptionType.ATTACHMENT };
      case 'boolean':
        return { ...base, type: DiscordOptionType.BOOLEAN };
      case 'integer':
      case 'number':
        return {
          ...base,
          type: spec.kind === 'integer' ? DiscordOptionType.INTEGER : DiscordOptionType.NUMBER,
          ...(spec.min !== undefined ? { min_value: spec.min } : {}),
          ...(spec.max !== undefined ? { max_value: spec.max } : {}),
        };
      case 'enum':
        if ((spec.choices?.length ?? 0) <= 25 && !autocomplete.has(spec.name)) {
          return {
            ...base,
            type: DiscordOptionType.STRING,
            choices: (spec.choices ?? []).map((c) => ({ name: c, value: c })),
          };
        }
        return { ...base, type: DiscordOptionType.STRING, autocomplete: true };
      case 'string':
        return {
          ...base,
          type: DiscordOptionType.STRING,
          ...(spec.minLength !== undefined ? { min_length: spec.minLength } : {}),
          ...(spec.maxLength !== undefined ? { max_length: Math.min(spec.maxLength, 6000) } : {}),
          ...(autocomplete.has(spec.name) ? { autocomplete: true } : {}),
        };
    }
  });
  return [...out.filter((o) => o.required), ...out.filter((o) => !o.required)];
}

/** One CLI flag or positional, derived from an option spec. */
export interface CliOptionSpec {
  readonly name: string;
  /** `--kebab-name <value>`, or `--kebab-name` / `--no-kebab-name` for booleans. */
  readonly flag: string;
  readonly positional: boolean;
  readonly spec: OptionSpec;
}

/** CLI flags and positionals of a command, positionals sorted by position. */
export function toCliOptions(specs: readonly OptionSpec[]): CliOptionSpec[] {
  return specs
    .map((spec) => {
      const kebab = camelToKebab(spec.name);
      const flag = spec.kind === 'boolean' ? `--${kebab}` : `--${kebab} <${spec.kind === 'enum' ? 'choice' : spec.kind}>`;
      return { name: spec.name, flag, positional: spec.position !== undefined, spec };
    })
    .sort((a, b) => (a.spec.position ?? 1e9) - (b.spec.position ?? 1e9));
}

/**
 * Coerce string values (CLI arguments, multipart form fields, query strings) to the option kinds, so the
 * zod schema sees proper types. Unknown keys pass through unchanged: the schema rejects them.
 */
export function coerceStrings(specs: readonly OptionSpec[], raw: Record<string, unknown>): Record<string, unknown> {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const spec = byName.get(key);
    if (typeof value !== 'string' || !spec) {
      out[key] = value;
      continue;
    }
    switch (spec.kind) {
      case 'integer':
      case 'number': {
        const n = Number(value);
        out[key] = value.trim() !== '' && Number.isFinite(n) ? n : value;
        break;
      }
      case 'boolean':
        out[key] = /^(true|1|yes|on)$/i.test(value) ? true : /^(false|0|no|off)$/i.test(value) ? false : value;
        break;
      default:
        out[key] = value;
    }
  }
  return out;
}

/** Human summary of a zod failure: `k: must be ≤ 10; image: required`. */
export function formatZodError(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join('.') : 'input';
      if (issue.code === 'unrecognized_keys') return `unknown option(s): ${issue.keys.join(', ')}`;
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

/** Validate input against a schema, throwing BAD_INPUT with a one-line message listing the problems. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    throw new EngineError('BAD_INPUT', formatZodError(result.error), {
      details: { issues: result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) },
    });
  }
  return result.data;
}
