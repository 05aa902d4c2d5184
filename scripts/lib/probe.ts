/**
 * What the feature probes (scripts/probe-layers.ts, scripts/probe-spatial.ts) share: running every labelled
 * photo through the shipped pipeline into chosen backbone layers, and the folds they score on.
 */
import type { Backbone } from '../../engine/ml/backbones.ts';
import type { OrtOutput } from '../../engine/ml/onnx/ort.ts';
import { asEmbedItems, type LabelledItem } from '../../plugins/vision/lib/dataset.ts';
import { locatorFor, prepareInput, variantOf } from '../../plugins/vision/lib/features.ts';
import type { FeatureSpec } from '../../plugins/vision/lib/head.ts';
import type { Task } from '../../plugins/vision/lib/labels.ts';
import { fuzzyGroups, groupSplit, leaveOneSourceOut } from '../../plugins/vision/lib/split.ts';

/** One batch of {@link layerBatches}: `outs[l]` is layer `l`'s channels-last output for items `start..start+n`. */
export interface LayerBatch {
  readonly start: number;
  readonly n: number;
  readonly outs: readonly OrtOutput[];
}

/**
 * Every item, prepared as `spec` serves it (mirrored when `flip`), through `layers` of the backbone, in batches
 * of 8 (onnxruntime; a probe needs `featuresAsync`).
 */
export async function* layerBatches(
  backbone: Backbone,
  items: readonly LabelledItem[],
  spec: FeatureSpec,
  flip: boolean,
  layers: readonly string[],
): AsyncGenerator<LayerBatch> {
  if (!backbone.featuresAsync) throw new Error('the probes need onnxruntime (featuresAsync)');
  const variant = variantOf(spec, flip);
  const locator = locatorFor(backbone, variant);
  const list = asEmbedItems(items);
  const size = backbone.inputSize * backbone.inputSize * 3;
  for (let start = 0; start < list.length; start += 8) {
    const batch = list.slice(start, start + 8);
    const inputs = await Promise.all(batch.map(async (it) => prepareInput(await it.load(), backbone.inputSize, variant, locator)));
    const data = new Float32Array(inputs.length * size);
    inputs.forEach((x, i) => data.set(x, i * size));
    yield { start, n: inputs.length, outs: await backbone.featuresAsync(data, inputs.length, layers) };
  }
}

/** A train/test fold of item indices; `source` is `held-out` or the held-out source. */
export interface ProbeFold {
  readonly source: string;
  readonly train: number[];
  readonly test: number[];
}

/** train:defaults' folds: the fuzzy-name group split (10 % held out, `seed`), then each leave-one-source-out fold. */
export function probeFolds(items: readonly LabelledItem[], task: Task, seed: number): ProbeFold[] {
  const idx = items.map((_, i) => i);
  const groups = fuzzyGroups(idx.map((i) => ({ name: items[i]!.row.name, fallbackKey: items[i]!.sha })));
  const split = groupSplit(groups, idx.map((i) => items[i]!.row[task]), { testSize: 0.1, seed });
  return [{ source: 'held-out', train: split.train, test: split.test }, ...leaveOneSourceOut(idx.map((i) => items[i]!.row.source))];
}
