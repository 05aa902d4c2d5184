/**
 * The Discord transport: a thin adapter between discord.js events and the engine.
 *
 * - Slash commands: defer at once (Discord wants an answer within 3 s), download attachments from the
 *   CDN, check upload safety, `engine.invoke`, show throttled progress, then edit the deferred reply with
 *   text + embed + PNGs + buttons. Failures become a short ephemeral message from the error catalogue.
 * - Buttons → `engine.action`; autocomplete → `engine.autocomplete`.
 * - Mentions: with a photo (attached or in the replied-to message) run `hype` and `brand` and answer in
 *   one message; with words, route them to a command (LLM tool calling, else keywords).
 *
 * Nothing here decides who may do what: the engine's guards do, from the caller and guild passed in.
 */
import {
  Client,
  Events,
  GatewayIntentBits,
  MessageFlags,
  type Attachment,
  type AutocompleteInteraction,
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  type CommandInteractionOption,
  type Interaction,
  type Message,
  type MessageCreateOptions,
  type SendableChannels,
} from 'discord.js';
import { EngineError, toEngineError, type Caller, type Config, type Engine, type ImageRef, type Logger, type ProgressEvent, type Reply } from '../../engine/index.ts';
import { callerFromInteraction, callerFromMessage } from './caller.ts';
import { CdnDownloader, looksLikeImage, type AttachmentInfo } from './cdn.ts';
import { buildSlashCommands, type SlashCatalogue, type SlashRoute } from './commands.ts';
import { ProgressThrottle, PROGRESS_INTERVAL_MS } from './progress.ts';
import { errorText, renderProgress, renderReplies, renderReply, type RenderedMessage } from './render.ts';
import type { MessageRouter } from './router.ts';
import type { UploadSafety } from './safety.ts';

/** Options of {@link DiscordBot}. */
export interface DiscordBotOptions {
  /** Upload safety check; `false` disables it (tests, or a deployment that moderates elsewhere). */
  readonly safety: UploadSafety | false;
  readonly router: MessageRouter;
  /** Commands run on a mentioned photo, answered together (default `hype`, `brand`). */
  readonly photoCommands?: readonly string[];
  /** Minimum time between progress edits (default 1.5 s). */
  readonly progressIntervalMs?: number;
  /** Attachment size cap (default `SOLESCOPE_MAX_IMAGE_BYTES`). */
  readonly maxAttachmentBytes?: number;
  /** Attachment download timeout (default 15 s). */
  readonly downloadTimeoutMs?: number;
}

type ImageTarget = { readonly name: string; readonly url: string; readonly size?: number; readonly contentType?: string | null };

function attachmentInfo(a: Attachment | ImageTarget): AttachmentInfo {
  return { url: a.url, name: a.name, size: a.size, contentType: a.contentType };
}

/** The bot: owns the discord.js client and routes its events to the engine. */
export class DiscordBot {
  readonly client: Client;
  readonly cdn: CdnDownloader;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly photoCommands: readonly string[];
  private catalogue: { size: number; value: SlashCatalogue } | undefined;
  private closing = false;

  constructor(
    readonly engine: Engine,
    readonly config: Config,
    readonly logger: Logger,
    private readonly options: DiscordBotOptions,
  ) {
    const apiUrl = config.DISCORD_API_URL;
    const isShardChild = process.env.SHARDING_MANAGER === 'true';
    this.client = new Client({
      // Only what the bot needs: guilds (cache for roles/channels), guild messages + their content for the
      // mention flow. No presences, no members intent (privileged, not needed).
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent],
      ...(apiUrl ? { rest: { api: apiUrl } } : {}),
      // Under the ShardingManager, discord.js reads this process's shard ids from the environment; on its
      // own, a process runs as many shards as Discord recommends.
      ...(isShardChild ? {} : { shards: 'auto' as const }),
      allowedMentions: { parse: [], repliedUser: false },
    });
    this.cdn = new CdnDownloader({
      cdnUrl: config.DISCORD_CDN_URL,
      maxBytes: options.maxAttachmentBytes ?? config.SOLESCOPE_MAX_IMAGE_BYTES,
      ...(options.downloadTimeoutMs ? { timeoutMs: options.downloadTimeoutMs } : {}),
    });
    this.photoCommands = options.photoCommands ?? ['hype', 'brand'];
    this.client.on(Events.InteractionCreate, (interaction) => this.track(this.onInteraction(interaction)));
    this.client.on(Events.MessageCreate, (message) => this.track(this.onMessage(message)));
    this.client.on(Events.Error, (err) => this.logger.error('discord client error', { err }));
    this.client.on(Events.Warn, (message) => this.logger.warn('discord client warning', { message }));
    this.client.on(Events.ShardDisconnect, (event, shard) => this.logger.warn('discord shard disconnected', { shard, code: event.code }));
    this.client.on(Events.ShardResume, (shard, replayed) => this.logger.info('discord shard resumed', { shard, replayed }));
    this.client.on(Events.ShardError, (err, shard) => this.logger.warn('discord shard error', { shard, err }));
    this.client.rest.on('rateLimited', (info) => this.logger.warn('discord REST rate limited', { route: info.route, retryAfter: info.retryAfter, global: info.global }));
  }

  /** Log in; resolves once the client is ready (all guilds received). */
  async start(token: string): Promise<void> {
    const ready = new Promise<void>((resolve, reject) => {
      this.client.once(Events.ClientReady, () => resolve());
      this.client.login(token).catch(reject);
    });
    await ready;
    this.logger.info('discord client ready', { user: this.client.user?.tag, guilds: this.client.guilds.cache.size, shards: this.client.shard?.ids ?? [0] });
  }

  /** Stop taking events, wait (bounded) for running handlers, then disconnect. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.client.removeAllListeners(Events.InteractionCreate);
    this.client.removeAllListeners(Events.MessageCreate);
    const pending = Promise.allSettled([...this.inFlight]);
    await Promise.race([pending, new Promise((r) => setTimeout(r, graceMs).unref())]);
    await this.client.destroy();
  }

  /** The slash catalogue (rebuilt when plugins are added or removed). */
  slashCatalogue(): SlashCatalogue {
    if (!this.catalogue || this.catalogue.size !== this.engine.commands.size) {
      this.catalogue = { size: this.engine.commands.size, value: buildSlashCommands(this.engine) };
    }
    return this.catalogue.value;
  }

  private track(work: Promise<unknown>): void {
    const p = work.catch((err: unknown) => this.logger.error('discord handler failed', { err }));
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  // ------------------------------------------------------------------ interactions

  private async onInteraction(interaction: Interaction): Promise<void> {
    if (this.closing) return;
    if (interaction.isChatInputCommand()) await this.onCommand(interaction);
    else if (interaction.isAutocomplete()) await this.onAutocomplete(interaction);
    else if (interaction.isButton()) await this.onButton(interaction);
  }

  private routeOf(interaction: ChatInputCommandInteraction | AutocompleteInteraction): SlashRoute | undefined {
    const group = interaction.options.getSubcommandGroup(false);
    const sub = interaction.options.getSubcommand(false);
    const path = [interaction.commandName, group, sub].filter((p): p is string => typeof p === 'string' && p !== '').join(' ');
    return this.slashCatalogue().routes.get(path);
  }

  private contextInit(interaction: Interaction, caller: Caller, onProgress?: (e: ProgressEvent) => void) {
    return {
      transport: 'discord' as const,
      caller,
      guildId: interaction.guildId ?? undefined,
      channelId: interaction.channelId ?? undefined,
      requestId: interaction.id,
      ...(onProgress ? { onProgress } : {}),
    };
  }

  private async onCommand(interaction: ChatInputCommandInteraction): Promise<void> {
    const route = this.routeOf(interaction);
    if (!route) {
      await this.replyError(interaction, new EngineError('UNKNOWN_COMMAND', `\`/${interaction.commandName}\` is not a solescope command (any more). Ask a moderator to run deploy:commands.`));
      return;
    }
    try {
      await interaction.deferReply();
    } catch (err) {
      this.logger.warn('could not defer interaction (expired?)', { command: route.command, err });
      return;
    }
    const caller = callerFromInteraction(interaction, this.config.DISCORD_MODERATOR_ROLE);
    let throttle: ProgressThrottle | undefined;
    try {
      const input = await this.interactionInput(interaction, route, caller);
      throttle = new ProgressThrottle(
        // Intermediate previews (dream, style transfer, GAN samples) ride along with the progress edit.
        (event) =>
          interaction.editReply({
            content: renderProgress(route.command, event),
            ...(event.preview ? { files: [{ attachment: event.preview.png, name: event.preview.name }] } : {}),
          }),
        this.logger,
        this.options.progressIntervalMs ?? PROGRESS_INTERVAL_MS,
      );
      const t = throttle;
      const result = await this.engine.invoke(route.command, input, this.contextInit(interaction, caller, (e) => t.push(e)));
      await throttle.stop();
      if (!result.ok) {
        await this.replyError(interaction, result.error);
        return;
      }
      await this.deliver(interaction, result.reply);
    } catch (err) {
      await throttle?.stop();
      await this.replyError(interaction, toEngineError(err));
    }
  }

  /** Slash options → engine input: names mapped back to the schema, attachments downloaded + checked. */
  private async interactionInput(interaction: ChatInputCommandInteraction, route: SlashRoute, caller: Caller): Promise<Record<string, unknown>> {
    let leaves: readonly CommandInteractionOption[] = interaction.options.data;
    while (leaves.length === 1 && leaves[0] && (leaves[0].type === 1 || leaves[0].type === 2)) leaves = leaves[0].options ?? [];
    const input: Record<string, unknown> = {};
    for (const option of leaves) {
      const name = route.optionNames.get(option.name) ?? option.name;
      if (option.type === 11) {
        if (!option.attachment) throw new EngineError('BAD_INPUT', `The \`${option.name}\` option arrived without its file; attach the photo again.`);
        input[name] = await this.fetchImage(option.attachment, { caller, guildId: interaction.guildId, channelId: interaction.channelId });
      } else {
        input[name] = option.value;
      }
    }
    return input;
  }

  /** Download + safety-check one attachment; explicit images are refused and reported to the mod log. */
  private async fetchImage(attachment: Attachment | ImageTarget, where: { caller: Caller; guildId: string | null; channelId: string | null }): Promise<ImageRef> {
    const image = await this.cdn.download(attachmentInfo(attachment));
    if (this.options.safety && typeof image !== 'string') {
      let verdict;
      try {
        verdict = await this.options.safety.check(image.data);
      } catch (err) {
        const e = toEngineError(err);
        if (e.code === 'NOT_AN_IMAGE') throw e;
        // Fail closed: without the check we do not know whether the image is safe to analyse and keep.
        throw new EngineError('UNAVAILABLE', 'The upload safety check is unavailable right now; try again later.', { cause: err });
      }
      if (verdict.explicit) {
        await this.modlog(
          `🚫 Refused an explicit upload from <@${where.caller.id}>${where.channelId ? ` in <#${where.channelId}>` : ''}: ` +
            `porn ${verdict.scores.porn.toFixed(2)}, hentai ${verdict.scores.hentai.toFixed(2)}, sexy ${verdict.scores.sexy.toFixed(2)}. ` +
            'It was not analysed and not stored.',
          where.guildId,
        );
        throw new EngineError('FORBIDDEN', 'That image looks explicit, so it was not analysed or kept.');
      }
    }
    return image;
  }

  private async modlog(text: string, guildId: string | null): Promise<void> {
    const id = this.config.DISCORD_MODLOG_CHANNEL;
    if (!id) return;
    try {
      const channel = await this.client.channels.fetch(id);
      // A mod-log channel belongs to one guild: do not leak notes about other servers into it.
      if (!channel || !channel.isSendable() || ('guildId' in channel && guildId && channel.guildId !== guildId)) return;
      await channel.send({ content: text, allowedMentions: { parse: [] } });
    } catch (err) {
      this.logger.warn('could not post to the moderator log channel', { err });
    }
  }

  /** Replace the deferred reply with the rendered result (ephemeral replies go out as a follow-up). */
  private async deliver(interaction: ChatInputCommandInteraction | ButtonInteraction, reply: Reply): Promise<void> {
    const rendered = withFallbackContent(renderReply(reply));
    try {
      if (reply.ephemeral && !interaction.ephemeral) {
        await interaction.deleteReply().catch(() => undefined);
        await interaction.followUp({ ...rendered, flags: MessageFlags.Ephemeral });
      } else {
        await interaction.editReply(rendered);
      }
    } catch (err) {
      this.logger.error('could not send the reply to Discord', { err });
      await interaction.editReply({ content: `${rendered.content.slice(0, 1500)}\n\n(Part of this answer could not be shown in Discord.)`, embeds: [], files: [], components: [] }).catch(() => undefined);
    }
  }

  /** An ephemeral error from the catalogue; a public deferred reply is removed first. */
  private async replyError(interaction: ChatInputCommandInteraction | ButtonInteraction | AutocompleteInteraction, error: EngineError): Promise<void> {
    if (interaction.isAutocomplete()) return;
    const content = errorText(error);
    try {
      if (interaction.deferred || interaction.replied) {
        if (interaction.ephemeral) {
          await interaction.editReply({ content, embeds: [], files: [], components: [] });
        } else {
          await interaction.deleteReply().catch(() => undefined);
          await interaction.followUp({ content, flags: MessageFlags.Ephemeral });
        }
      } else {
        await interaction.reply({ content, flags: MessageFlags.Ephemeral });
      }
    } catch (err) {
      this.logger.warn('could not send an error reply', { err, code: error.code });
    }
  }

  private async onButton(interaction: ButtonInteraction): Promise<void> {
    try {
      await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    } catch (err) {
      this.logger.warn('could not defer button interaction', { err });
      return;
    }
    const caller = callerFromInteraction(interaction, this.config.DISCORD_MODERATOR_ROLE);
    const result = await this.engine.action(interaction.customId, this.contextInit(interaction, caller));
    if (!result.ok) await this.replyError(interaction, result.error);
    else await this.deliver(interaction, result.reply);
  }

  private async onAutocomplete(interaction: AutocompleteInteraction): Promise<void> {
    const route = this.routeOf(interaction);
    let choices: string[] = [];
    if (route) {
      const focused = interaction.options.getFocused(true);
      const option = route.optionNames.get(focused.name) ?? focused.name;
      const caller = callerFromInteraction(interaction, this.config.DISCORD_MODERATOR_ROLE);
      const partial = String(focused.value ?? '');
      choices = await this.engine.autocomplete(route.command, option, partial, this.contextInit(interaction, caller));
      // Enums with more than 25 values are sent as autocomplete options: filter their choices here.
      const spec = this.engine.commands.get(route.command)?.options.find((o) => o.name === option);
      if (choices.length === 0 && spec?.kind === 'enum') {
        choices = (spec.choices ?? []).filter((c) => c.toLowerCase().includes(partial.toLowerCase()));
      }
    }
    await interaction
      .respond(choices.slice(0, 25).map((c) => ({ name: c.slice(0, 100), value: c.slice(0, 100) })))
      .catch((err: unknown) => this.logger.warn('autocomplete respond failed', { err }));
  }

  // ------------------------------------------------------------------ messages

  private async onMessage(message: Message): Promise<void> {
    if (this.closing || message.author.bot || !message.inGuild()) return;
    const me = this.client.user;
    if (!me || !message.mentions.users.has(me.id)) return;
    const caller = callerFromMessage(message, this.config.DISCORD_MODERATOR_ROLE);
    const where = { caller, guildId: message.guildId, channelId: message.channelId };
    try {
      let photo = message.attachments.find((a) => looksLikeImage(attachmentInfo(a)));
      if (!photo && message.attachments.size > 0) {
        const first = message.attachments.first();
        throw new EngineError('NOT_AN_IMAGE', `"${first?.name ?? 'that file'}" is not an image; attach a PNG, JPEG or WebP photo.`);
      }
      if (!photo && message.reference?.messageId) {
        const referenced = await message.fetchReference().catch(() => undefined);
        photo = referenced?.attachments.find((a) => looksLikeImage(attachmentInfo(a)));
      }
      void ('sendTyping' in message.channel ? message.channel.sendTyping().catch(() => undefined) : undefined);
      if (photo) await this.answerPhoto(message, photo, where);
      else await this.answerText(message, caller);
    } catch (err) {
      await this.send(message, { content: errorText(toEngineError(err)) });
    }
  }

  private ctxForMessage(message: Message, caller: Caller) {
    return { transport: 'discord' as const, caller, guildId: message.guildId ?? undefined, channelId: message.channelId, requestId: message.id };
  }

  private imageOptionOf(command: string): string | undefined {
    return this.engine.commands.get(command)?.options.find((o) => o.kind === 'image')?.name;
  }

  /** A mentioned photo: every photo command (hype, brand) on it, answered in one message. */
  private async answerPhoto(message: Message, photo: Attachment, where: { caller: Caller; guildId: string | null; channelId: string | null }): Promise<void> {
    const commands = this.photoCommands.filter((c) => this.imageOptionOf(c) !== undefined);
    if (commands.length === 0) {
      throw new EngineError('UNAVAILABLE', 'The photo commands (hype, brand) are not loaded on this bot.');
    }
    const image = await this.fetchImage(photo, where);
    const results = await Promise.all(
      commands.map((c) => this.engine.invoke(c, { [this.imageOptionOf(c) ?? 'image']: image }, this.ctxForMessage(message, where.caller))),
    );
    const replies = results.flatMap((r) => (r.ok ? [r.reply] : []));
    const failures = results.flatMap((r) => (r.ok ? [] : [`\`${r.command}\`: ${errorText(r.error)}`]));
    if (replies.length === 0) {
      const first = results.find((r) => !r.ok);
      await this.send(message, { content: first && !first.ok ? errorText(first.error) : 'Nothing to show.' });
      return;
    }
    const rendered = renderReplies(failures.length > 0 ? [...replies, { text: failures.join('\n') }] : replies);
    await this.send(message, withFallbackContent(rendered));
  }

  /** Mentioned words: routed to a command (or answered) by the router. */
  private async answerText(message: Message, caller: Caller): Promise<void> {
    // Each routed message may cost an LLM call: limit them per user (in Redis when configured).
    if (this.options.router.kind === 'llm') {
      const hit = await this.engine.services.rateLimiter.hit(`discord:route:${caller.id}`, 5, 60_000);
      if (!hit.allowed) {
        throw new EngineError('RATE_LIMITED', `I answer at most 5 questions a minute per person; try again in ${Math.ceil(hit.retryAfterMs / 1000)}s.`);
      }
    }
    const decision = await this.options.router.route(message.content);
    if (decision.kind === 'answer') {
      await this.send(message, { content: decision.text.slice(0, 2000) });
      return;
    }
    // Images only ever come from Discord attachments: a URL a model put in an image argument is dropped.
    const input = { ...decision.input };
    const imageOptions = this.engine.commands.get(decision.command)?.options.filter((o) => o.kind === 'image') ?? [];
    for (const option of imageOptions) delete input[option.name];
    if (imageOptions.some((o) => o.required)) {
      await this.send(message, { content: `📷 Attach a sneaker photo (or reply to one) and mention me to run \`${decision.command}\`.` });
      return;
    }
    const result = await this.engine.invoke(decision.command, input, this.ctxForMessage(message, caller));
    if (!result.ok) await this.send(message, { content: errorText(result.error) });
    else await this.send(message, withFallbackContent(renderReply(result.reply)));
  }

  private async send(message: Message, body: Partial<RenderedMessage> & { content: string }): Promise<void> {
    try {
      await message.reply(body as MessageCreateOptions);
    } catch (err) {
      this.logger.warn('could not reply to a message', { err });
      const channel = message.channel as SendableChannels;
      await channel.send({ content: body.content.slice(0, 2000) }).catch(() => undefined);
    }
  }
}

/** Discord rejects a message with no content, embed or file: say something. */
function withFallbackContent(rendered: RenderedMessage): RenderedMessage {
  if (rendered.content.trim() !== '' || rendered.embeds.length > 0 || rendered.files.length > 0) return rendered;
  return { ...rendered, content: '✅ Done.' };
}
