/**
 * Rendering engine replies and errors as Discord messages: text as content, an embed with the reply's
 * title, fields and colour (its first PNG as the embed image), every PNG as an attachment, and the
 * reply's actions as buttons. Discord's size limits are applied here so a long reply is clipped, never
 * rejected by the API.
 */
import { ActionRowBuilder, AttachmentBuilder, ButtonBuilder, ButtonStyle, EmbedBuilder, type APIEmbed } from 'discord.js';
import { ERROR_CATALOGUE, progressBar, type EngineError, type ProgressEvent, type Reply, type ReplyAction } from '../../engine/index.ts';

/** Discord's limits we clip to. */
export const LIMITS = { content: 2000, embedTitle: 256, embedDescription: 4096, fields: 25, fieldName: 256, fieldValue: 1024, files: 10, rows: 5, buttonsPerRow: 5, buttonLabel: 80, customId: 100 } as const;

/** A message body usable for `editReply`, `followUp`, `reply` and `channel.send`. */
export interface RenderedMessage {
  content: string;
  embeds: APIEmbed[];
  files: AttachmentBuilder[];
  components: ActionRowBuilder<ButtonBuilder>[];
}

/** Colour of error embeds and the default reply colour. */
export const COLORS = { reply: 0x5865f2, error: 0xed4245 } as const;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

const STYLE: Record<NonNullable<ReplyAction['style']>, ButtonStyle> = {
  primary: ButtonStyle.Primary,
  secondary: ButtonStyle.Secondary,
  success: ButtonStyle.Success,
  danger: ButtonStyle.Danger,
};

/** Buttons for actions: up to 5 per row, 5 rows; ids over Discord's 100 chars are dropped (logged by caller). */
export function renderActions(actions: readonly ReplyAction[]): ActionRowBuilder<ButtonBuilder>[] {
  const usable = actions.filter((a) => a.id.length > 0 && a.id.length <= LIMITS.customId).slice(0, LIMITS.rows * LIMITS.buttonsPerRow);
  const rows: ActionRowBuilder<ButtonBuilder>[] = [];
  for (let i = 0; i < usable.length; i += LIMITS.buttonsPerRow) {
    rows.push(
      new ActionRowBuilder<ButtonBuilder>().addComponents(
        usable.slice(i, i + LIMITS.buttonsPerRow).map((a) =>
          new ButtonBuilder()
            .setCustomId(a.id)
            .setLabel(clip(a.label, LIMITS.buttonLabel))
            .setStyle(STYLE[a.style ?? 'secondary']),
        ),
      ),
    );
  }
  return rows;
}

/** The embed of a reply, or undefined when the reply has nothing an embed would add. */
export function renderEmbed(reply: Reply, imageName?: string): APIEmbed | undefined {
  if (reply.title === undefined && (reply.fields?.length ?? 0) === 0 && reply.color === undefined && !imageName) return undefined;
  const embed = new EmbedBuilder().setColor(reply.color ?? COLORS.reply);
  if (reply.title) embed.setTitle(clip(reply.title, LIMITS.embedTitle));
  const fields = (reply.fields ?? []).slice(0, LIMITS.fields).map((f) => ({
    name: clip(f.name || '\u200b', LIMITS.fieldName),
    value: clip(f.value || '\u200b', LIMITS.fieldValue),
    inline: f.inline ?? true,
  }));
  if (fields.length > 0) embed.addFields(fields);
  if (imageName) embed.setImage(`attachment://${imageName}`);
  return embed.toJSON();
}

/** Safe attachment names (Discord resolves `attachment://name` only for plain names). */
function fileName(name: string, used: Set<string>): string {
  const base = name.replace(/[^\w.-]/g, '_').replace(/^\.+/, '') || 'image.png';
  const withExt = /\.png$/i.test(base) ? base : `${base}.png`;
  let candidate = withExt;
  for (let i = 2; used.has(candidate); i += 1) candidate = withExt.replace(/\.png$/i, `-${i}.png`);
  used.add(candidate);
  return candidate;
}

/** Render one reply. */
export function renderReply(reply: Reply): RenderedMessage {
  return renderReplies([reply]);
}

/**
 * Render several replies as ONE message (mention with a photo → `hype` + `brand`): texts joined,
 * one embed per reply, all PNGs, all buttons.
 */
export function renderReplies(replies: readonly Reply[]): RenderedMessage {
  const used = new Set<string>();
  const files: AttachmentBuilder[] = [];
  const embeds: APIEmbed[] = [];
  for (const reply of replies) {
    const names: string[] = [];
    for (const image of reply.images ?? []) {
      if (files.length >= LIMITS.files) break;
      const name = fileName(image.name, used);
      names.push(name);
      files.push(new AttachmentBuilder(image.png, { name, ...(image.alt ? { description: clip(image.alt, 1024) } : {}) }));
    }
    const embed = renderEmbed(reply, names[0]);
    if (embed && embeds.length < 10) embeds.push(embed);
  }
  const joined = replies.map((r) => r.text).filter((t) => t.trim() !== '').join('\n\n');
  const components = renderActions(replies.flatMap((r) => r.actions ?? []));
  if (joined.length > LIMITS.content && replies.length === 1) {
    // A long text (help, reports) fits an embed description (4,096) better than content (2,000).
    const first = embeds[0] ?? new EmbedBuilder().setColor(replies[0]?.color ?? COLORS.reply).toJSON();
    embeds[0] = { ...first, description: clip(joined, LIMITS.embedDescription) };
    return { content: '', embeds, files, components };
  }
  return { content: clip(joined, LIMITS.content), embeds, files, components };
}

/** The short user-facing text of an error: the catalogue sentence plus the specific message. */
export function errorText(error: EngineError): string {
  const spec = ERROR_CATALOGUE[error.code] ?? ERROR_CATALOGUE.INTERNAL;
  const specific = error.message && error.message !== spec.userMessage ? ` ${error.message}` : '';
  return clip(`⚠️ ${spec.userMessage}${specific}`, LIMITS.content);
}

/** Content of a progress edit: stage, bar, queue position and a message. */
export function renderProgress(commandName: string, event: ProgressEvent): string {
  const lines = [`⏳ \`${commandName}\`${event.stage ? ` — ${event.stage}` : ''}`];
  if (event.queuePosition !== undefined && event.queuePosition > 0) lines.push(`Waiting in the queue: position ${event.queuePosition}`);
  if (event.fraction !== undefined) lines.push(`\`${progressBar(event.fraction)}\``);
  if (event.message) lines.push(event.message);
  const metrics = Object.entries(event.metrics ?? {}).slice(0, 6).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`);
  if (metrics.length > 0) lines.push(metrics.join(' · '));
  return clip(lines.join('\n'), LIMITS.content);
}
