import { describe, expect, it } from 'vitest';
import { loadHead } from '../../plugins/training/lib/head.ts';
import { AUTO_TEMPERATURES, chooseTemperature, MIN_TEMPERATURE_PHOTOS, temperatureSchema, type PreparedRun } from '../../plugins/training/lib/pipeline.ts';
import type { DataSnapshot, LabelledItem } from '../../plugins/training/lib/data.ts';
import { handHead } from './hand-heads.ts';

// A hype head on 1-d embeddings with logits ±(ln 3)·x: at x = 1 it says sigmoid(2 ln 3) = 90 % hyped, at
// temperature T sigmoid(2 ln 3 / T).
const head = (): Buffer =>
  Buffer.from(JSON.stringify(handHead({ id: 'hand', task: 'hype', labels: ['hyped', 'not_hyped'], kernel: [Math.log(3), -Math.log(3)], ood: { centroids: [[1]], threshold: 2 } })));

const item = (i: number, label: string): LabelledItem => ({ sha: `s${i}`, name: `shoe ${i}`, label, origin: 'import', group: 'test' });

/** A split of `n` photos at x = `at` (default 1), `hyped` of them hyped. */
function split(n: number, hyped: number, from: number, at = 1) {
  const items = Array.from({ length: n }, (_, i) => item(from + i, i < hyped ? 'hyped' : 'not_hyped'));
  return { x: items.map(() => Float32Array.from([at])), y: items.map((i) => (i.label === 'hyped' ? 0 : 1)), items };
}

const run = (validation: ReturnType<typeof split>, test = split(12, 9, 1000)): PreparedRun => ({
  classes: ['hyped', 'not_hyped'],
  features: { backbone: 'synthetic', prepVersion: 'test' },
  snapshot: {} as DataSnapshot,
  train: { x: [], y: [], items: [] },
  validation,
  test,
  views: [],
});

const served = (artifact: Buffer) => JSON.parse(artifact.toString('utf8')) as { temperature: number; meta: { temperature: { mode: unknown; used: number } } };

describe('the temperature a trained head answers at', () => {
  it('GIVEN validation photos right 3 times in 4 at 90 % THEN auto fits T = 2 (75 %), writes it, and the test photos show what it did', () => {
    const r = chooseTemperature(head(), run(split(24, 18, 0)), 'auto');
    expect(r.temperature.used).toBe(2);
    expect(served(r.artifact).temperature).toBe(2);
    expect(served(r.artifact).meta.temperature).toMatchObject({ mode: 'auto', used: 2 });
    expect(loadHead(r.artifact).predict(Float32Array.from([1]))[0]).toBeCloseTo(0.75, 6);
    const { validation, test } = r.temperature;
    expect(validation?.n).toBe(24);
    expect(validation!.used.nll).toBeLessThan(validation!.asTrained.nll);
    // The test photos (also right 3 in 4) never chose, and gain as much: ECE 0.15 → 0.
    expect(test?.n).toBe(12);
    expect(test!.asTrained.ece).toBeCloseTo(0.15, 6);
    expect(test!.used.ece).toBeCloseTo(0, 6);
    expect(r.temperature.note).toBeUndefined();
  });

  it('GIVEN a head far surer than it is right (as a community head trained for fixed epochs can be) THEN auto goes past 4, up to 100', () => {
    // At x = 4 the head says sigmoid(8 ln 3): 75 % needs T = 8.
    const r = chooseTemperature(head(), run(split(24, 18, 0, 4), split(12, 9, 1000, 4)), 'auto');
    expect(AUTO_TEMPERATURES.at(-1)).toBe(100);
    expect(AUTO_TEMPERATURES.slice(30, 34)).toEqual([4, 4.5, 5, 5.5]);
    expect(r.temperature.used).toBe(8);
    expect(r.temperature.test!.used.ece).toBeCloseTo(0, 6);
  });

  it('GIVEN a head less sure than it is right THEN auto keeps 1 (never sharpens), while a number is written as asked', () => {
    // Every photo hyped: the log-loss would fall all the way down the grid, but auto stops at 1.
    const allRight = run(split(24, 24, 0));
    expect(chooseTemperature(head(), allRight, 'auto').temperature.used).toBe(1);
    const sharp = chooseTemperature(head(), allRight, 0.5);
    expect(sharp.temperature).toMatchObject({ mode: 0.5, used: 0.5 });
    expect(served(sharp.artifact).temperature).toBe(0.5);
    expect(sharp.temperature.validation!.used.nll).toBeLessThan(sharp.temperature.validation!.asTrained.nll);
  });

  it('GIVEN too few validation photos THEN auto keeps 1 and says why', () => {
    const r = chooseTemperature(head(), run(split(MIN_TEMPERATURE_PHOTOS - 1, 14, 0)), 'auto');
    expect(r.temperature.used).toBe(1);
    expect(r.temperature.note).toMatch(new RegExp(`${MIN_TEMPERATURE_PHOTOS - 1} validation photos are too few`));
    expect(served(r.artifact).temperature).toBe(1);
  });

  it('GIVEN the option as the CLI and Discord pass it THEN auto or a number in range parses, anything else is refused', () => {
    expect(temperatureSchema.parse(undefined)).toBe('auto');
    expect(temperatureSchema.parse('auto')).toBe('auto');
    expect(temperatureSchema.parse('2.1')).toBe(2.1);
    expect(temperatureSchema.parse(1.5)).toBe(1.5);
    for (const bad of ['warm', '0', '101', '']) expect(temperatureSchema.safeParse(bad).success).toBe(false);
    // The message a moderator reads for a word that is not auto (a union's own message would be "Invalid input").
    expect(temperatureSchema.safeParse('warm').error?.issues[0]?.message).toBe('auto, or a number from 0.25 to 100 (e.g. 2.1)');
  });
});
