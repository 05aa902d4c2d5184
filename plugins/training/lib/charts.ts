/**
 * The training pictures, drawn with @napi-rs/canvas (Skia, prebuilt, no system Cairo): training curves,
 * the model card (metrics, confusion matrix, data, labellers, date, gate decision) and the tuning
 * intermediate-values plot (Optuna's "plot_intermediate_values").
 */
import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas';
import type { EpochLog } from './head.ts';
import type { Evaluation } from './metrics.ts';

const FONT = 'DejaVu Sans, Arial, sans-serif';
const MONO = 'DejaVu Sans Mono, Menlo, monospace';
const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04', '#db2777', '#4b5563', '#65a30d'];

/** One line of a chart. */
export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  readonly color?: string;
  readonly dashed?: boolean;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function niceRange(values: readonly number[], clamp01 = false): [number, number] {
  const finite = values.filter(Number.isFinite);
  let lo = finite.length > 0 ? Math.min(...finite) : 0;
  let hi = finite.length > 0 ? Math.max(...finite) : 1;
  if (clamp01) {
    lo = Math.max(0, Math.min(lo, 0));
    hi = Math.min(1, Math.max(hi, 1));
  }
  if (hi - lo < 1e-9) {
    hi += 0.5;
    lo -= 0.5;
  }
  const pad = (hi - lo) * 0.05;
  return [clamp01 ? lo : lo - pad, clamp01 ? hi : hi + pad];
}

/** Draw a line chart into a box of a context. */
function drawChart(ctx: SKRSContext2D, box: Box, title: string, series: readonly Series[], opts: { xLabel: string; yLabel: string; clamp01?: boolean; mark?: { x: number; y: number; label: string } }): void {
  const plot = { x: box.x + 56, y: box.y + 30, w: box.w - 76, h: box.h - 70 };
  ctx.fillStyle = '#111827';
  ctx.font = `bold 15px ${FONT}`;
  ctx.fillText(title, box.x + 8, box.y + 18);
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [x0, x1] = niceRange(xs.length > 0 ? xs : [0, 1]);
  const [y0, y1] = niceRange(ys, opts.clamp01 ?? false);
  const px = (x: number): number => plot.x + ((x - x0) / (x1 - x0)) * plot.w;
  const py = (y: number): number => plot.y + plot.h - ((y - y0) / (y1 - y0)) * plot.h;
  ctx.strokeStyle = '#e5e7eb';
  ctx.lineWidth = 1;
  ctx.font = `11px ${FONT}`;
  ctx.fillStyle = '#4b5563';
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(plot.x, py(y));
    ctx.lineTo(plot.x + plot.w, py(y));
    ctx.stroke();
    ctx.fillText(Math.abs(y) >= 100 ? y.toFixed(0) : y.toFixed(2), box.x + 6, py(y) + 4);
    const x = x0 + ((x1 - x0) * i) / 4;
    ctx.fillText(String(Number(x.toFixed(x1 - x0 > 8 ? 0 : 1)) + 0), px(x) - 8, plot.y + plot.h + 16);
  }
  ctx.strokeStyle = '#374151';
  ctx.strokeRect(plot.x, plot.y, plot.w, plot.h);
  ctx.fillText(opts.xLabel, plot.x + plot.w / 2 - 20, box.y + box.h - 12);
  ctx.save();
  ctx.translate(box.x + 14, plot.y + plot.h / 2 + 20);
  ctx.rotate(-Math.PI / 2);
  ctx.restore();
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.setLineDash(s.dashed ? [6, 4] : []);
    ctx.beginPath();
    s.points.forEach(([x, y], j) => (j === 0 ? ctx.moveTo(px(x), py(y)) : ctx.lineTo(px(x), py(y))));
    ctx.stroke();
    if (s.points.length === 1) {
      const [x, y] = s.points[0]!;
      ctx.fillStyle = color;
      ctx.fillRect(px(x) - 2, py(y) - 2, 4, 4);
    }
  });
  ctx.setLineDash([]);
  if (opts.mark) {
    ctx.fillStyle = '#111827';
    ctx.beginPath();
    ctx.arc(px(opts.mark.x), py(opts.mark.y), 5, 0, Math.PI * 2);
    ctx.fill();
    ctx.font = `bold 11px ${FONT}`;
    ctx.fillText(opts.mark.label, Math.min(px(opts.mark.x) + 8, plot.x + plot.w - 80), py(opts.mark.y) - 8);
  }
  // Legend (at most 10 entries).
  ctx.font = `11px ${FONT}`;
  series.slice(0, 10).forEach((s, i) => {
    const lx = plot.x + 8 + (i % 2) * Math.min(180, plot.w / 2);
    const ly = plot.y + 14 + Math.floor(i / 2) * 14;
    ctx.fillStyle = s.color ?? PALETTE[i % PALETTE.length]!;
    ctx.fillRect(lx, ly - 8, 10, 3);
    ctx.fillStyle = '#111827';
    ctx.fillText(s.name, lx + 14, ly - 4);
  });
}

/** Training curves: loss and validation loss, validation macro-F1 and accuracy per epoch. */
export function curvesPng(curves: readonly EpochLog[], title = 'Training curves'): Buffer {
  const canvas = createCanvas(900, 360);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, 900, 360);
  drawChart(ctx, { x: 0, y: 0, w: 450, h: 360 }, `${title}: loss`, [
    { name: 'train loss', points: curves.map((c) => [c.epoch, c.loss]) },
    { name: 'validation loss', points: curves.map((c) => [c.epoch, c.valLoss]), dashed: true },
  ], { xLabel: 'epoch', yLabel: 'loss' });
  drawChart(ctx, { x: 450, y: 0, w: 450, h: 360 }, 'validation metrics', [
    { name: 'macro-F1', points: curves.map((c) => [c.epoch, c.valMacroF1]), color: '#16a34a' },
    { name: 'accuracy', points: curves.map((c) => [c.epoch, c.valAccuracy]), color: '#9333ea', dashed: true },
  ], { xLabel: 'epoch', yLabel: 'score', clamp01: true });
  return canvas.toBuffer('image/png');
}

/** What a model card shows. */
export interface ModelCard {
  readonly id: number;
  readonly task: string;
  readonly aliases: readonly string[];
  readonly status: string;
  readonly createdAt: Date;
  readonly createdBy: string;
  readonly evaluation?: Evaluation | undefined;
  readonly dataSize?: { train: number; test: number } | undefined;
  readonly labellers?: number | undefined;
  readonly datasets?: readonly string[] | undefined;
  readonly decision?: string | undefined;
  readonly params?: Record<string, unknown> | undefined;
}

/** The model card PNG: header, metrics table, confusion matrix, data and gate decision. */
export function modelCardPng(card: ModelCard): Buffer {
  const W = 900;
  const H = 560;
  const canvas = createCanvas(W, H);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = '#111827';
  ctx.fillRect(0, 0, W, 56);
  ctx.fillStyle = '#ffffff';
  ctx.font = `bold 22px ${FONT}`;
  ctx.fillText(`${card.task} model #${card.id}`, 20, 36);
  ctx.font = `14px ${FONT}`;
  const badge = card.aliases.length > 0 ? card.aliases.join(', ') : card.status;
  ctx.fillText(`${badge}  ·  ${card.createdAt.toISOString().slice(0, 16).replace('T', ' ')} UTC  ·  by ${card.createdBy}`, 300, 36);

  ctx.fillStyle = '#111827';
  ctx.font = `bold 15px ${FONT}`;
  ctx.fillText('Test-split metrics', 20, 88);
  ctx.font = `13px ${FONT}`;
  const e = card.evaluation;
  let y = 110;
  const line = (text: string, bold = false, mono = false): void => {
    ctx.font = `${bold ? 'bold ' : ''}${mono ? 12 : 13}px ${mono ? MONO : FONT}`;
    ctx.fillText(text, 20, y);
    y += 19;
  };
  if (e) {
    line(`accuracy ${e.accuracy.toFixed(3)}   macro-F1 ${e.macroF1.toFixed(3)}   weighted-F1 ${e.weightedF1.toFixed(3)}   n=${e.n}`, true);
    line('class        precision  recall     f1  support', false, true);
    for (const [label, m] of Object.entries(e.perClass)) {
      line(`${label.slice(0, 12).padEnd(12)} ${m.precision.toFixed(3).padStart(9)} ${m.recall.toFixed(3).padStart(7)} ${m.f1.toFixed(3).padStart(6)} ${String(m.support).padStart(8)}`, false, true);
    }
  } else {
    line('No evaluation recorded for this version.');
  }
  y += 8;
  ctx.font = `bold 15px ${FONT}`;
  ctx.fillText('Data', 20, y);
  y += 22;
  if (card.dataSize) line(`train ${card.dataSize.train} images · test ${card.dataSize.test} images (group-aware split)`);
  if (card.datasets) line(`datasets: ${card.datasets.join(', ') || '—'}`);
  if (card.labellers !== undefined) line(`community labellers: ${card.labellers}`);
  if (card.params) {
    const p = Object.entries(card.params)
      .filter(([, v]) => typeof v !== 'object')
      .map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(4)) : String(v)}`)
      .join(' ');
    wrap(ctx, `params: ${p}`, 20, y, 440, 17).forEach(() => (y += 17));
    // Views, the test-time view and the temperature are objects, left out above; they decide how the model answers.
    const views = Array.isArray(card.params.views) ? card.params.views.map(String) : undefined;
    if (views) line(`training views: photo${views.map((v) => ` + ${v}`).join('')}`);
    const tta = card.params.tta as { used?: unknown } | undefined;
    if (tta && typeof tta === 'object') line(`answers with: ${tta.used === 'mirror' ? 'photo + mirror' : 'photo alone'}`);
    const temperature = card.params.temperature as { used?: unknown; mode?: unknown; note?: unknown } | undefined;
    const how = temperature?.mode !== 'auto' ? 'set' : temperature.note ? 'too few validation photos to fit' : 'fitted on validation photos';
    if (temperature && typeof temperature.used === 'number') line(`softmax temperature: ${temperature.used} (${how})`);
  }
  y += 8;
  if (card.decision) {
    ctx.font = `bold 15px ${FONT}`;
    ctx.fillStyle = '#111827';
    ctx.fillText('Gate decision', 20, y);
    y += 20;
    ctx.font = `13px ${FONT}`;
    ctx.fillStyle = '#374151';
    wrap(ctx, card.decision, 20, y, 440, 17);
  }

  // Confusion matrix heatmap on the right.
  if (e && e.confusion.labels.length > 0) {
    const labels = e.confusion.labels;
    const n = labels.length;
    const size = Math.min(360 / n, 90);
    const ox = 520;
    const oy = 120;
    ctx.fillStyle = '#111827';
    ctx.font = `bold 15px ${FONT}`;
    ctx.fillText('Confusion matrix (rows: true, cols: predicted)', 470, 88);
    const max = Math.max(1, ...e.confusion.matrix.flat());
    e.confusion.matrix.forEach((row, i) =>
      row.forEach((v, j) => {
        const t = v / max;
        ctx.fillStyle = `rgb(${Math.round(239 - t * 202)}, ${Math.round(246 - t * 147)}, ${Math.round(255 - t * 20)})`;
        ctx.fillRect(ox + j * size, oy + i * size, size - 2, size - 2);
        ctx.fillStyle = t > 0.55 ? '#ffffff' : '#111827';
        ctx.font = `bold 14px ${FONT}`;
        ctx.fillText(String(v), ox + j * size + size / 2 - 8, oy + i * size + size / 2 + 5);
      }),
    );
    ctx.fillStyle = '#111827';
    ctx.font = `12px ${FONT}`;
    labels.forEach((l, i) => {
      ctx.fillText(l.slice(0, 9), ox - 68, oy + i * size + size / 2 + 4);
      ctx.save();
      ctx.translate(ox + i * size + size / 2 - 4, oy + n * size + 8);
      ctx.rotate(Math.PI / 4);
      ctx.fillText(l.slice(0, 9), 0, 0);
      ctx.restore();
    });
  }
  return canvas.toBuffer('image/png');
}

function wrap(ctx: SKRSContext2D, text: string, x: number, y: number, maxWidth: number, lineHeight: number): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let current = '';
  for (const w of words) {
    const next = current ? `${current} ${w}` : w;
    if (ctx.measureText(next).width > maxWidth && current) {
      lines.push(current);
      current = w;
    } else current = next;
  }
  if (current) lines.push(current);
  lines.forEach((l, i) => ctx.fillText(l, x, y + i * lineHeight));
  return lines;
}

/** One tuning trial's curve. */
export interface TrialCurve {
  readonly trial: number;
  /** Per-epoch validation macro-F1 of the fit (the photo alone). */
  readonly values: readonly (readonly [number, number])[];
  /** The trial's objective (its score as served; see `training.trial`). */
  readonly final: number;
  /** Set when {@link final} was scored with the mirror view too, so it can sit above the drawn curve. */
  readonly finalWithMirror?: boolean;
}

/** Intermediate values of every trial (validation macro-F1 per epoch), the best one marked. */
export function tunePlotPng(trials: readonly TrialCurve[], title = 'Hyperparameter search: intermediate values'): Buffer {
  const canvas = createCanvas(900, 420);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, 900, 420);
  const best = [...trials].sort((a, b) => b.final - a.final)[0];
  const lastPoint = best?.values[best.values.length - 1];
  drawChart(
    ctx,
    { x: 0, y: 0, w: 900, h: 420 },
    title,
    trials.map((t, i) => ({ name: `trial ${t.trial}${t === best ? ' (best)' : ''}`, points: t.values, color: PALETTE[i % PALETTE.length]!, dashed: t !== best })),
    { xLabel: 'epoch', yLabel: 'validation macro-F1', clamp01: true, ...(best && lastPoint ? { mark: { x: lastPoint[0], y: lastPoint[1], label: `best: ${best.final.toFixed(3)}${best.finalWithMirror ? ' (photo + mirror)' : ''}` } } : {}) },
  );
  return canvas.toBuffer('image/png');
}
