import { describe, it, expect } from 'vitest';
import { getTf, isTfReady, mlStatus, wasmBinaryFolder } from '../../engine/ml/index.ts';
import { existsSync } from 'node:fs';
import path from 'node:path';

async function installed(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
    return true;
  } catch {
    return false;
  }
}

describe('ML runtime', () => {
  it('GIVEN no backend chosen yet THEN status reports null without initialising one', () => {
    const before = mlStatus();
    expect(before.backend).toBeNull();
    expect(isTfReady()).toBe(false);
  });

  it('GIVEN auto THEN the best available backend starts once and is shared', async () => {
    const [a, b] = await Promise.all([getTf(), getTf()]);
    expect(a).toBe(b);
    const status = mlStatus();
    const nodeGpu = await installed('@tensorflow/tfjs-node-gpu');
    const node = await installed('@tensorflow/tfjs-node');
    const expected = nodeGpu ? 'tensorflow-gpu' : node ? 'tensorflow' : 'wasm';
    expect(status.backend).toBe(expected);
    expect(a.getBackend()).toBe(expected === 'wasm' ? 'wasm' : 'tensorflow');
    if (expected === 'wasm') {
      // The optional native packages are absent here: each skip names its reason.
      expect(status.skipped.join('\n')).toMatch(/tfjs-node-gpu/);
      expect(status.threads).toBe(1);
      expect(typeof status.simd).toBe('boolean');
    }
    expect(isTfReady()).toBe(true);
    expect(status.initMs).toBeGreaterThanOrEqual(0);
    // A later call asking for something else still gets the process-wide choice.
    expect(await getTf({ backend: 'cpu' })).toBe(a);
    expect(mlStatus().backend).toBe(expected);
  });

  it('GIVEN the wasm backend THEN its binaries are read from the installed package and patches are applied', async () => {
    const folder = wasmBinaryFolder();
    expect(existsSync(path.join(folder, 'tfjs-backend-wasm-simd.wasm'))).toBe(true);
    const tf = await getTf();
    if (tf.getBackend() === 'wasm') {
      expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
      expect(mlStatus().patched).toContain('wasm/Conv2DBackpropFilter');
    }
  });

  it('GIVEN tensors created and disposed THEN numTensors in status follows them', async () => {
    const tf = await getTf();
    const before = mlStatus().numTensors;
    const t = tf.tensor([1, 2, 3]);
    expect(mlStatus().numTensors).toBe(before + 1);
    t.dispose();
    expect(mlStatus().numTensors).toBe(before);
  });
});
