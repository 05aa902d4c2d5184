/**
 * Hand-built `solescope-head` files for tests that need a head whose every weight they chose: one dense layer on
 * the raw (unstandardised) embedding, so a test can say exactly what each photo and view scores.
 */
export interface HandHeadOptions {
  readonly id: string;
  readonly task: 'hype' | 'brand';
  readonly labels: readonly string[];
  /** Row-major [inputs × labels] kernel of the single linear layer. */
  readonly kernel: readonly number[];
  readonly bias?: readonly number[];
  readonly backbone?: string;
  readonly prepVersion?: string;
  readonly features?: Record<string, boolean>;
  readonly ood: { readonly centroids: readonly (readonly number[])[]; readonly threshold: number };
  readonly openSet?: { readonly centroids: readonly (readonly number[])[]; readonly radius: readonly number[]; readonly spread: readonly number[] };
  readonly tta?: 'mirror';
}

/** The head file as a plain object (JSON-serialisable, parsed by the vision and training plugins alike). */
export function handHead(o: HandHeadOptions): Record<string, unknown> {
  const inputs = o.kernel.length / o.labels.length;
  return {
    format: 'solescope-head',
    version: 1,
    id: o.id,
    task: o.task,
    labels: o.labels,
    backbone: o.backbone ?? 'synthetic',
    prepVersion: o.prepVersion ?? 'test',
    features: o.features ?? { trim: false, flipAverage: false, l2: false },
    standardise: { mean: new Array<number>(inputs).fill(0), std: new Array<number>(inputs).fill(1) },
    layers: [{ inputs, units: o.labels.length, kernel: o.kernel, bias: o.bias ?? new Array<number>(o.labels.length).fill(0), activation: 'linear' }],
    ...(o.openSet ? { openSet: o.openSet } : {}),
    ood: o.ood,
    ...(o.tta ? { tta: o.tta } : {}),
    seed: 1,
    createdAt: '2026-12-06T00:00:00.000Z',
  };
}
