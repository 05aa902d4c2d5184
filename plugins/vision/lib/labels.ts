/**
 * The two vision tasks and their label sets (the shared contract: brand ∈ jordan|nike|adidas|other,
 * hype ∈ hyped|not_hyped; anything else is "unlabelled for that task").
 */

/** The classification tasks the vision plugin serves. */
export const TASKS = ['hype', 'brand'] as const;
/** A vision task. */
export type Task = (typeof TASKS)[number];

/** Brand labels, in the order used by every model file and reply. */
export const BRANDS = ['jordan', 'nike', 'adidas', 'other'] as const;
/** A brand label. */
export type Brand = (typeof BRANDS)[number];

/** Hype labels; index 0 is the positive class (probability = P(hyped)). */
export const HYPES = ['hyped', 'not_hyped'] as const;
/** A hype label. */
export type Hype = (typeof HYPES)[number];

/** The labels of a task in canonical order. */
export function labelsOf(task: Task): readonly string[] {
  return task === 'brand' ? BRANDS : HYPES;
}

/** Whether a string is one of the task's labels. */
export function isLabel(task: Task, value: string): boolean {
  return labelsOf(task).includes(value);
}

/**
 * Normalise a raw label cell (case, spaces, dashes: `Not Hyped`, `not-hyped`) to a task label, or
 * undefined when it is empty or unknown (e.g. the dev data's `brand = unknown`).
 */
export function parseLabel(task: Task, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const v = raw.trim().toLowerCase().replace(/[\s-]+/g, '_');
  if (v === '') return undefined;
  if (task === 'hype') {
    if (v === 'hyped' || v === 'hype') return 'hyped';
    if (v === 'not_hyped' || v === 'nothyped' || v === 'not_hype' || v === 'unhyped') return 'not_hyped';
    return undefined;
  }
  return (BRANDS as readonly string[]).includes(v) ? v : undefined;
}
