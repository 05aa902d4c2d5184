import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  DiscordOptionType,
  coerceStrings,
  describeOptions,
  imageInput,
  parseInput,
  toCliOptions,
  toJsonSchema,
  toSlashOptions,
} from '../../engine/index.ts';

// One schema exercising every option kind the transports understand.
const schema = z
  .object({
    image: imageInput('The photo'),
    style: imageInput('Style photo').optional(),
    task: z.enum(['hype', 'brand']).default('hype').describe('Which model'),
    k: z.number().int().min(1).max(20).default(5).describe('Neighbours'),
    strength: z.number().min(0).max(2).optional().describe('Strength'),
    verbose: z.boolean().optional().describe('More output'),
    name: z.string().min(2).max(50).optional().describe('A name'),
    nameIncludes: z.string().optional().describe('Substring filter'),
  })
  .strict();

describe('describeOptions', () => {
  const specs = describeOptions(schema);
  const byName = Object.fromEntries(specs.map((s) => [s.name, s]));

  it('GIVEN every option type THEN derives kind, requiredness, bounds, choices and defaults', () => {
    expect(byName.image).toMatchObject({ kind: 'image', required: true, position: 0, description: 'The photo' });
    expect(byName.style).toMatchObject({ kind: 'image', required: false, position: 1 });
    expect(byName.task).toMatchObject({ kind: 'enum', choices: ['hype', 'brand'], required: false, defaultValue: 'hype' });
    expect(byName.k).toMatchObject({ kind: 'integer', min: 1, max: 20, defaultValue: 5, required: false });
    expect(byName.strength).toMatchObject({ kind: 'number', min: 0, max: 2, required: false });
    expect(byName.verbose).toMatchObject({ kind: 'boolean', required: false });
    expect(byName.name).toMatchObject({ kind: 'string', minLength: 2, maxLength: 50 });
    expect(byName.k?.position).toBeUndefined();
  });

  it('GIVEN explicit positionals THEN they replace the image default order', () => {
    const s = describeOptions(schema, ['name', 'image']);
    expect(s.find((o) => o.name === 'name')?.position).toBe(0);
    expect(s.find((o) => o.name === 'image')?.position).toBe(1);
    expect(s.find((o) => o.name === 'style')?.position).toBeUndefined();
  });
});

describe('toSlashOptions', () => {
  const slash = toSlashOptions(describeOptions(schema), new Set(['name']));
  const byName = Object.fromEntries(slash.map((o) => [o.name, o]));

  it('GIVEN images THEN attachment options; enums choices; numbers min/max; camelCase → snake_case', () => {
    expect(byName.image).toEqual({ type: DiscordOptionType.ATTACHMENT, name: 'image', description: 'The photo', required: true });
    expect(byName.style?.type).toBe(DiscordOptionType.ATTACHMENT);
    expect(byName.task).toMatchObject({ type: DiscordOptionType.STRING, choices: [{ name: 'hype', value: 'hype' }, { name: 'brand', value: 'brand' }] });
    expect(byName.k).toMatchObject({ type: DiscordOptionType.INTEGER, min_value: 1, max_value: 20 });
    expect(byName.strength).toMatchObject({ type: DiscordOptionType.NUMBER, min_value: 0, max_value: 2 });
    expect(byName.verbose?.type).toBe(DiscordOptionType.BOOLEAN);
    expect(byName.name).toMatchObject({ type: DiscordOptionType.STRING, min_length: 2, max_length: 50, autocomplete: true });
    expect(byName.name_includes?.type).toBe(DiscordOptionType.STRING);
  });

  it('GIVEN optional options declared first THEN required ones are listed first, as Discord demands', () => {
    const s = z.object({ a: z.string().optional(), b: z.string() });
    expect(toSlashOptions(describeOptions(s)).map((o) => o.name)).toEqual(['b', 'a']);
  });

  it('GIVEN more than 25 enum values THEN autocomplete instead of choices', () => {
    const many = z.object({ e: z.enum(Array.from({ length: 30 }, (_, i) => `v${i}`) as [string, ...string[]]) });
    expect(toSlashOptions(describeOptions(many))[0]).toMatchObject({ autocomplete: true });
    expect(toSlashOptions(describeOptions(many))[0]?.choices).toBeUndefined();
  });

  it('GIVEN a long description THEN it is clipped to Discord’s 100 characters', () => {
    const s = z.object({ a: z.string().describe('x'.repeat(300)) });
    expect(toSlashOptions(describeOptions(s))[0]?.description.length).toBe(100);
  });
});

describe('toCliOptions', () => {
  it('GIVEN the schema THEN positionals first, kebab-case flags, value placeholders by kind', () => {
    const cli = toCliOptions(describeOptions(schema));
    expect(cli.slice(0, 2).map((o) => [o.name, o.positional])).toEqual([
      ['image', true],
      ['style', true],
    ]);
    const flags = Object.fromEntries(cli.map((o) => [o.name, o.flag]));
    expect(flags.nameIncludes).toBe('--name-includes <string>');
    expect(flags.k).toBe('--k <integer>');
    expect(flags.task).toBe('--task <choice>');
    expect(flags.verbose).toBe('--verbose');
  });
});

describe('coerceStrings + parseInput (HTTP forms and CLI)', () => {
  const specs = describeOptions(schema);
  it('GIVEN string values THEN numbers and booleans are coerced and the schema accepts them', () => {
    const input = coerceStrings(specs, { image: 'a.jpg', k: '7', strength: '0.5', verbose: 'true' });
    expect(input).toEqual({ image: 'a.jpg', k: 7, strength: 0.5, verbose: true });
    expect(parseInput(schema, input)).toMatchObject({ image: 'a.jpg', k: 7, task: 'hype' });
  });
  it('GIVEN a non-numeric number THEN BAD_INPUT names the option', () => {
    const input = coerceStrings(specs, { image: 'a.jpg', k: 'many' });
    expect(() => parseInput(schema, input)).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringContaining('k:') }));
  });
  it('GIVEN out-of-range, unknown and missing options THEN one BAD_INPUT lists them', () => {
    try {
      parseInput(schema, { k: 99, bogus: 1 });
      expect.unreachable();
    } catch (err) {
      const e = err as { code: string; message: string };
      expect(e.code).toBe('BAD_INPUT');
      expect(e.message).toMatch(/image/);
      expect(e.message).toMatch(/unknown option\(s\): bogus/);
    }
  });
  it('GIVEN an uploaded buffer THEN the image option accepts it', () => {
    const out = parseInput(schema, { image: { kind: 'buffer', data: new Uint8Array([1, 2]) } });
    expect(out.image).toMatchObject({ kind: 'buffer' });
  });
});

describe('toJsonSchema (LLM tools)', () => {
  it('GIVEN images THEN they are described as URL strings; numbers keep bounds; enums keep values', () => {
    const json = toJsonSchema(schema) as { properties: Record<string, Record<string, unknown>>; required: string[] };
    expect(json.properties.image).toMatchObject({ type: 'string', description: 'The photo' });
    expect(json.properties.k).toMatchObject({ type: 'integer', minimum: 1, maximum: 20, default: 5 });
    expect(json.properties.task).toMatchObject({ enum: ['hype', 'brand'] });
    expect(json.required).toContain('image');
    expect(JSON.stringify(json)).not.toContain('buffer');
  });
});
