import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import {
  fileSystemHandler,
  fixScalelessBatchNorm,
  getTf,
  gradCam,
  loadBackboneFrom,
  loadGraphBackboneFrom,
  nsfwjsModelHandler,
  nsfwjsPackageDir,
  type Tf,
} from '../../engine/ml/index.ts';
import { tinyConvModel, twoSquares } from './fixtures.ts';

let tf: Tf;
let dir: string;
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  tf = await getTf();
  dir = await mkdtemp(path.join(tmpdir(), 'solescope-ml-'));
  server = createServer((req, res) => {
    const file = path.join(dir, 'model', path.basename(new URL(req.url ?? '/', 'http://x').pathname));
    readFile(file).then(
      (body) => {
        res.writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
        res.end(body);
      },
      () => {
        res.writeHead(404);
        res.end();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  baseUrl = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

describe('loading TF.js models from a folder or URL', () => {
  it('GIVEN a model saved to a folder THEN loadBackboneFrom embeds exactly like the original', async () => {
    const model = tinyConvModel(tf);
    const folder = path.join(dir, 'model');
    await model.save(fileSystemHandler(folder));
    const json = JSON.parse(await readFile(path.join(folder, 'model.json'), 'utf8')) as { weightsManifest: unknown[] };
    expect(json.weightsManifest).toHaveLength(1);

    const backbone = await loadBackboneFrom(folder, { embeddingLayer: 'pool', camLayer: 'feat', name: 'tiny' });
    expect(backbone).toMatchObject({ name: 'tiny', inputSize: 16, embedDim: 3, camLayer: 'feat' });
    const x = tf.tensor4d(twoSquares(), [1, 16, 16, 3]);
    const want = model.predict(x) as tfTypes.Tensor;
    const got = backbone.embed(x);
    expect(Array.from(await got.data())).toEqual(Array.from(await want.data()));
    // 25 red pixels and 25 green pixels out of 256.
    expect((await got.data())[0]).toBeCloseTo(25 / 256, 5);
    tf.dispose([x, want, got]);
    backbone.dispose();
    model.dispose();
  });

  it('GIVEN the same folder served over http THEN tf.io.http loads it and the path to model.json works too', async () => {
    const overHttp = await loadBackboneFrom(`${baseUrl}/model.json`, { embeddingLayer: 'pool' });
    const fromJson = await loadBackboneFrom(path.join(dir, 'model', 'model.json'), { embeddingLayer: 'pool' });
    const emb = await overHttp.embedImages([twoSquares()]);
    const emb2 = await fromJson.embedImages([twoSquares()]);
    expect(Array.from(emb[0]!)).toEqual(Array.from(emb2[0]!));
    expect(overHttp.camLayer).toBeNull();
    overHttp.dispose();
    fromJson.dispose();
  });

  it('GIVEN a missing folder, a corrupt model.json or a missing shard THEN MODEL_MISSING', async () => {
    await expect(loadBackboneFrom(path.join(dir, 'nope'), { embeddingLayer: 'pool' })).rejects.toMatchObject({
      code: 'MODEL_MISSING',
    });
    const bad = path.join(dir, 'bad');
    await fileSystemHandler(bad).save!({ modelTopology: {}, weightSpecs: [], weightData: new ArrayBuffer(0) });
    await writeFile(path.join(bad, 'model.json'), '{ not json');
    await expect(loadBackboneFrom(bad, { embeddingLayer: 'pool' })).rejects.toMatchObject({ code: 'MODEL_MISSING' });
    const noShard = path.join(dir, 'no-shard');
    await tinyConvModel(tf).save(fileSystemHandler(noShard));
    await rm(path.join(noShard, 'weights.bin'));
    await expect(loadBackboneFrom(noShard, { embeddingLayer: 'pool' })).rejects.toMatchObject({
      code: 'MODEL_MISSING',
      message: expect.stringMatching(/weights/),
    });
    await expect(loadBackboneFrom(`${baseUrl}/missing.json`, { embeddingLayer: 'pool' })).rejects.toMatchObject({
      code: 'MODEL_MISSING',
    });
  });

  it('GIVEN an unknown embedding layer THEN BAD_INPUT and nothing leaks', async () => {
    const before = tf.memory().numTensors;
    await expect(loadBackboneFrom(path.join(dir, 'model'), { embeddingLayer: 'nope' })).rejects.toMatchObject({
      code: 'BAD_INPUT',
      message: expect.stringMatching(/no layer "nope"/),
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('GIVEN the nsfwjs package THEN its folder is found from its main entry', () => {
    expect(nsfwjsPackageDir()).toMatch(/nsfwjs$/);
  });
});

describe('BatchNormalization with scale=false', () => {
  it('GIVEN a scale-less BN layer THEN it gets a gamma of ones: same outputs, and gradients flow', async () => {
    const input = tf.input({ shape: [4, 4, 2] });
    const bnLayer = tf.layers.batchNormalization({ scale: false, name: 'bn' });
    const out = tf.layers.globalAveragePooling2d({}).apply(bnLayer.apply(input)) as tfTypes.SymbolicTensor;
    const built = tf.model({ inputs: input, outputs: out });
    // Round-trip through disk: a LOADED model initialises added weights to zeros, which the fix must undo.
    const folder = path.join(dir, 'bn');
    await built.save(fileSystemHandler(folder));
    built.dispose();
    const model = await tf.loadLayersModel(fileSystemHandler(folder));
    const x = tf.randomUniform([1, 4, 4, 2], 0, 1, 'float32', 7);
    const before = model.predict(x) as tfTypes.Tensor;
    expect(fixScalelessBatchNorm(tf, model)).toBe(1);
    expect(fixScalelessBatchNorm(tf, model)).toBe(0);
    const after = model.predict(x) as tfTypes.Tensor;
    expect(Array.from(await after.data())).toEqual(Array.from(await before.data()));
    const g = tf.grad((t: tfTypes.Tensor) => (model.apply(t) as tfTypes.Tensor).sum())(x);
    // d mean(x / sqrt(var + eps)) / dx = 1 / (16 sqrt(1 + 0.001)) per element (moving var = 1).
    const grads = await g.data();
    expect(grads[0]).toBeCloseTo(1 / (16 * Math.sqrt(1.001)), 5);
    tf.dispose([x, before, after, g]);
    model.dispose();
  });
});

describe('GraphModel backbones (e.g. a TF-Hub feature vector)', () => {
  const FEATURE =
    'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze';
  const SPATIAL =
    'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/MobilenetV2/Conv_1/Relu6';

  it('GIVEN a graph model in a folder THEN it embeds by node, exposes spatial nodes for CAMs, and frees everything', async () => {
    // nsfwjs ships a TF-Hub MobileNetV2 graph export: write it to a folder like a user's download.
    const folder = path.join(dir, 'graph');
    await fileSystemHandler(folder).save!(await nsfwjsModelHandler('mobilenet_v2_mid').load!());
    await expect(loadBackboneFrom(folder, { embeddingLayer: 'x' })).rejects.toMatchObject({
      code: 'BAD_INPUT',
      message: expect.stringMatching(/loadGraphBackboneFrom/),
    });
    const before = tf.memory().numTensors;
    const graph = await loadGraphBackboneFrom(folder, { outputNode: FEATURE, camNode: SPATIAL, name: 'hub' });
    expect(graph).toMatchObject({ kind: 'graph', name: 'hub', inputSize: 224, embedDim: 1792, camLayer: SPATIAL });
    // (MobileNetV2 with width multiplier 1.4: 1792 features, not 1280.)
    const img = new Float32Array(224 * 224 * 3).fill(0.5);
    const [e] = await graph.embedImages([img]);
    expect(e).toHaveLength(1792);
    const x = graph.toBatch([img]);
    const [spatial] = graph.features(x, [SPATIAL]);
    expect(spatial!.shape).toEqual([1, 7, 7, 1792]);
    // The feature vector is the spatial mean of Conv_1/Relu6.
    const meanT = tf.tidy(() => spatial!.mean([1, 2]));
    const mean = await meanT.data();
    meanT.dispose();
    for (let j = 0; j < 1792; j += 113) expect(mean[j]).toBeCloseTo(e![j]!, 3);
    expect(() => graph.features(x, ['no/such/node'])).toThrow(/no node/);
    tf.dispose([x, spatial!]);
    // Grad-CAM works on a graph backbone too (gradients only from the head down to the CAM node).
    const w = tf.randomNormal([1792, 3], 0, 0.05, 'float32', 5);
    const cam = await gradCam(graph, img, (emb) => tf.softmax(emb.matMul(w)) as tfTypes.Tensor2D);
    expect(cam.heatmap).toMatchObject({ width: 7, height: 7 });
    expect(cam.layer).toBe(SPATIAL);
    w.dispose();
    const classifier = await loadGraphBackboneFrom(folder);
    expect(classifier.embedDim).toBe(5); // default output node: the model's own 5-way head
    classifier.dispose();
    graph.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
