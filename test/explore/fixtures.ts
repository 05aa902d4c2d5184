/**
 * Generated fixtures for the exploration tests: small side-view "sneakers" drawn as SVG (sole, upper,
 * toe cap, collar) in a chosen colour on white, imported into a store with brand/hype labels and a dataset.
 * Nothing here reads ../shared.
 */
import sharp from 'sharp';
import { createEngine, type Engine } from '../../engine/index.ts';
import { openStore, type Store } from '../../engine/store/index.ts';
import explore from '../../plugins/explore/index.ts';

/** One fixture image to import. */
export interface FixtureSpec {
  readonly color: string;
  readonly brand?: 'jordan' | 'nike' | 'adidas' | 'other';
  readonly hype?: 'hyped' | 'not_hyped';
  readonly name?: string;
  readonly width?: number;
  readonly height?: number;
  /** Toe direction (the preprocessing mirrors left-pointing shoes). */
  readonly toe?: 'left' | 'right';
  readonly source?: string;
  readonly guildId?: string;
  /** Shift of the shoe inside the frame, px (makes images differ while keeping the colour). */
  readonly shift?: number;
}

/** A PNG of a simple sneaker silhouette. */
export async function shoePng(spec: FixtureSpec): Promise<Buffer> {
  const w = spec.width ?? 160;
  const h = spec.height ?? 100;
  const s = spec.shift ?? 0;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="160" height="100" viewBox="0 0 160 100">
    <rect width="160" height="100" fill="#ffffff"/>
    <g transform="translate(${s},0)">
      <path d="M20 40 L60 30 L85 50 L140 58 Q150 62 148 72 L20 72 Z" fill="${spec.color}"/>
      <rect x="18" y="72" width="132" height="10" fill="#333333"/>
      <path d="M118 56 Q146 60 148 72 L118 72 Z" fill="#f0f0f0"/>
      <rect x="22" y="36" width="14" height="10" fill="#222222"/>
    </g>
  </svg>`;
  // 'contain' scales the drawing uniformly and pads with white: the canvas size varies, the shoe's shape does not.
  let img = sharp(Buffer.from(svg)).resize(w, h, { fit: 'contain', background: '#ffffff' });
  if (spec.toe === 'left') img = img.flop();
  return img.flatten({ background: '#ffffff' }).png().toBuffer();
}

/** A solid-colour PNG (for exact-mean tests with an identity preprocessor). */
export async function solidPng(rgb: readonly [number, number, number], width = 32, height = 32): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
}

/** Put images into the store with their labels and add them to `dataset`. Returns the ids in order. */
export async function importFixtures(store: Store, dataset: string, items: readonly { png: Buffer; spec: Partial<FixtureSpec> }[]): Promise<string[]> {
  await store.datasets.ensure({ name: dataset });
  const shas: string[] = [];
  for (const { png, spec } of items) {
    const meta = await sharp(png).metadata();
    const row = await store.images.put({
      bytes: png,
      width: meta.width!,
      height: meta.height!,
      format: 'png',
      source: spec.source ?? 'import',
      ...(spec.name ? { name: spec.name } : {}),
      ...(spec.guildId ? { guildId: spec.guildId } : {}),
    });
    shas.push(row.sha256);
    if (spec.brand) await store.labels.add({ imageSha: row.sha256, task: 'brand', value: spec.brand, by: `import:${dataset}`, origin: 'import' });
    if (spec.hype) await store.labels.add({ imageSha: row.sha256, task: 'hype', value: spec.hype, by: `import:${dataset}`, origin: 'import' });
  }
  await store.datasets.addImages(dataset, shas);
  return shas;
}

/** An engine with an in-memory SQLite store and the explore plugin. */
export async function exploreEngine(): Promise<{ engine: Engine; store: Store }> {
  const store = await openStore({ url: ':memory:' });
  const engine = createEngine({ store });
  await engine.register(explore);
  return { engine, store };
}

/** Width and height of a PNG. */
export async function pngSize(png: Buffer): Promise<{ width: number; height: number; format: string }> {
  const meta = await sharp(png).metadata();
  return { width: meta.width!, height: meta.height!, format: meta.format! };
}
