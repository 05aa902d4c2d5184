/**
 * The transport-neutral result of a command. Each transport renders it for its medium: the CLI prints
 * `text` and writes `images` to `--out`, HTTP returns them base64 in the envelope, Discord edits the
 * deferred reply with an embed (`title`, `fields`, `color`) and PNG attachments plus `actions` as buttons.
 */

/** A named PNG produced by a command. */
export interface ReplyImage {
  /** File name, e.g. `hype-heatmap.png`. */
  readonly name: string;
  /** PNG bytes. */
  readonly png: Buffer;
  /** Alt text / caption. */
  readonly alt?: string;
}

/** A name/value pair shown as an embed field in Discord and a `name: value` line in the CLI. */
export interface ReplyField {
  readonly name: string;
  readonly value: string;
  readonly inline?: boolean;
}

/** A button offered with the reply (Discord renders buttons; other transports list them in `data`). */
export interface ReplyAction {
  /** Stable id, routed back to the plugin (`<plugin>:<action>:<payload>`), at most 100 chars. */
  readonly id: string;
  readonly label: string;
  readonly style?: 'primary' | 'secondary' | 'success' | 'danger';
}

/** The result of a command. */
export interface Reply {
  /** One paragraph of human text (markdown allowed). */
  readonly text: string;
  readonly title?: string;
  readonly fields?: readonly ReplyField[];
  readonly images?: readonly ReplyImage[];
  /** Machine-readable result (what `--json` and the API return under `data`). */
  readonly data?: Record<string, unknown>;
  readonly actions?: readonly ReplyAction[];
  /** Embed colour, 0xRRGGBB. */
  readonly color?: number;
  /** Discord only: show the reply only to the caller. */
  readonly ephemeral?: boolean;
}

/** A progress event a long command or job reports; transports throttle and render it. */
export interface ProgressEvent {
  /** 0..1 when known. */
  readonly fraction?: number;
  /** Short stage name, e.g. `embedding`, `epoch 3/10`. */
  readonly stage?: string;
  /** A human line. */
  readonly message?: string;
  /** Position in a job queue, when waiting. */
  readonly queuePosition?: number;
  /** An intermediate preview PNG (dream, style transfer, GAN samples). */
  readonly preview?: ReplyImage;
  /** Extra numbers (loss, metric, ETA seconds). */
  readonly metrics?: Record<string, number>;
}

/** Build a reply (keeps call sites short and typed). */
export function reply(text: string, extra: Omit<Reply, 'text'> = {}): Reply {
  return { text, ...extra };
}

/** The JSON envelope shared by the CLI `--json` output and the HTTP API. */
export type Envelope =
  | {
      ok: true;
      command: string;
      text: string;
      data: Record<string, unknown>;
      images: { name: string; path?: string; base64?: string; alt?: string }[];
      fields?: ReplyField[];
      title?: string;
    }
  | { ok: false; error: { code: string; message: string; details?: Record<string, unknown> } };

/** A text progress bar like `[██████░░░░] 60%`, shared by the CLI and Discord transports. */
export function progressBar(fraction: number, width = 20): string {
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const filled = Math.round(f * width);
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${Math.round(f * 100)}%`;
}
