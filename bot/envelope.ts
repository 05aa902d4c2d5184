/**
 * The JSON envelope shared by `--json` and the HTTP API, built once from an invoke result.
 */
import type { Envelope, InvokeResult, ReplyImage } from '../engine/index.ts';

/** Build the envelope; `image` renders each PNG for the medium (a file path or base64). */
export function toEnvelope(
  result: InvokeResult,
  image: (img: ReplyImage) => { path?: string; base64?: string },
): Envelope {
  if (!result.ok) return { ok: false, error: result.error.toJSON() };
  const r = result.reply;
  return {
    ok: true,
    command: result.command,
    text: r.text,
    data: { ...(r.data ?? {}), ...(r.actions && r.actions.length > 0 ? { actions: r.actions } : {}) },
    images: (r.images ?? []).map((img) => ({ name: img.name, ...(img.alt ? { alt: img.alt } : {}), ...image(img) })),
    ...(r.fields && r.fields.length > 0 ? { fields: [...r.fields] } : {}),
    ...(r.title ? { title: r.title } : {}),
  };
}
