/**
 * Free text → a command. When the bot is mentioned with words ("@solescope what does the average jordan
 * look like?"), a LangChain tool-calling chat model picks a command; its tools are the engine's
 * JSON-Schema tool descriptions, so every plugin command is routable without extra code. Without a
 * configured provider (or when the provider fails) a deterministic keyword router answers instead.
 *
 * Providers (env): `LLM_PROVIDER=openai|ollama|anthropic`, `LLM_MODEL`, `LLM_BASE_URL` (an
 * OpenAI-compatible server, an Ollama host, or an Anthropic proxy), `LLM_API_KEY`. The provider's
 * `@langchain/<provider>` package is imported only when configured; when it is not installed the bot
 * logs how to install it and keeps the keyword router.
 */
import type { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { HumanMessage, SystemMessage, type AIMessage } from '@langchain/core/messages';
import type { Config, Engine, Logger, OptionSpec } from '../../engine/index.ts';

/** What the router decided: run a command with input, or just answer. */
export type RouteDecision =
  | { readonly kind: 'command'; readonly command: string; readonly input: Record<string, unknown>; readonly via: string }
  | { readonly kind: 'answer'; readonly text: string; readonly via: string };

/** Routes a free-text request. */
export interface MessageRouter {
  readonly kind: 'llm' | 'keywords';
  route(text: string): Promise<RouteDecision>;
}

/** The tool name of an engine command (spaces are not allowed in tool names). */
export function toolName(command: string): string {
  return command.replace(/ /g, '_');
}

const STOP_WORDS = new Set(['the', 'a', 'an', 'of', 'for', 'me', 'my', 'this', 'that', 'please', 'show', 'what', 'is', 'does', 'do', 'with', 'to', 'and', 'in', 'on', 'it', 'can', 'you', 'i']);

function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/<@!?\d+>/g, ' ')
    .split(/[^a-z0-9-]+/)
    .filter((w) => w.length > 0 && !STOP_WORDS.has(w));
}

/**
 * Deterministic router: scores each command by the words of its name found in the text (a full name
 * match wins), then fills enum options whose choice appears in the text and integer options written as
 * `<option> <n>`. With no match it answers with the list of commands.
 */
export class KeywordRouter implements MessageRouter {
  readonly kind = 'keywords' as const;

  constructor(private readonly engine: Engine) {}

  async route(text: string): Promise<RouteDecision> {
    const said = words(text);
    const joined = ` ${said.join(' ')} `;
    let best: { name: string; score: number } | undefined;
    for (const [name, command] of this.engine.commands) {
      if (command.definition.hiddenFromTools || (command.definition.permissions ?? 'everyone') !== 'everyone') continue;
      const parts = name.split(/[ -]/);
      const said1 = (p: string): boolean => said.includes(p) || said.includes(`${p}s`);
      // A group word alone ("models") is not enough for "models promote": its own word must be said.
      const own = name.split(' ').slice(1).flatMap((w) => w.split('-'));
      if (own.length > 0 && !own.some(said1)) continue;
      const hits = parts.filter(said1).length;
      let score = hits / parts.length;
      if (joined.includes(` ${name.replace(/ /g, ' ')} `) || joined.includes(` ${name.replace(/ /g, '-')} `)) score += 1;
      if (score > 0 && (!best || score > best.score || (score === best.score && name.length > best.name.length))) best = { name, score };
    }
    if (!best || best.score < 0.5) {
      const list = [...this.engine.commands.values()]
        .filter((c) => (c.definition.permissions ?? 'everyone') === 'everyone')
        .map((c) => `\`${c.definition.name}\``)
        .slice(0, 20);
      return { kind: 'answer', via: 'keywords', text: `I did not catch which command you mean. I can run: ${list.join(', ')}. Attach a sneaker photo and mention me to rate it.` };
    }
    const specs = this.engine.commands.get(best.name)?.options ?? [];
    return { kind: 'command', via: 'keywords', command: best.name, input: extractOptions(specs, said) };
  }
}

function extractOptions(specs: readonly OptionSpec[], said: readonly string[]): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const spec of specs) {
    if (spec.kind === 'enum') {
      const choice = spec.choices?.find((c) => said.includes(c.toLowerCase()));
      if (choice) input[spec.name] = choice;
    } else if (spec.kind === 'integer' || spec.kind === 'number') {
      const i = said.indexOf(spec.name.toLowerCase());
      const next = i >= 0 ? said[i + 1] : undefined;
      if (next !== undefined && /^\d+(\.\d+)?$/.test(next)) input[spec.name] = Number(next);
    }
  }
  return input;
}

const SYSTEM_PROMPT =
  'You are solescope, a Discord bot about sneakers. Pick the ONE tool that serves the user\'s request and ' +
  'fill its arguments from their words. Image arguments are filled by the bot from the photo the user ' +
  'attached: never invent URLs for them. If no tool fits, answer briefly in plain text.';

/** Routes with a LangChain tool-calling chat model; falls back to keywords on any failure. */
export class LlmRouter implements MessageRouter {
  readonly kind = 'llm' as const;
  private readonly byTool: Map<string, string>;

  constructor(
    private readonly model: BaseChatModel,
    private readonly engine: Engine,
    private readonly fallback: MessageRouter,
    private readonly logger: Logger,
    private readonly timeoutMs = 20_000,
  ) {
    this.byTool = new Map([...engine.commands.keys()].map((name) => [toolName(name), name]));
  }

  /** The tools offered to the model: the engine's JSON-Schema descriptions, in LangChain's tool shape. */
  tools(): { name: string; description: string; schema: Record<string, unknown> }[] {
    return this.engine.toolDescriptions().map((t) => ({ name: t.name, description: t.description, schema: t.parameters }));
  }

  async route(text: string): Promise<RouteDecision> {
    const clean = text.replace(/<@!?\d+>/g, '').trim();
    try {
      if (!this.model.bindTools) throw new Error('this chat model cannot call tools');
      const bound = this.model.bindTools(this.tools());
      const message = (await bound.invoke([new SystemMessage(SYSTEM_PROMPT), new HumanMessage(clean)], { signal: AbortSignal.timeout(this.timeoutMs) })) as AIMessage;
      const call = message.tool_calls?.[0];
      if (call) {
        const command = this.byTool.get(call.name);
        if (!command) throw new Error(`model called unknown tool "${call.name}"`);
        return { kind: 'command', via: 'llm', command, input: (call.args ?? {}) as Record<string, unknown> };
      }
      const content = typeof message.content === 'string' ? message.content : '';
      if (content.trim() !== '') return { kind: 'answer', via: 'llm', text: content.slice(0, 1900) };
      throw new Error('model returned neither a tool call nor text');
    } catch (err) {
      this.logger.warn('LLM router failed; using keywords', { err });
      return this.fallback.route(text);
    }
  }
}

/**
 * The chat model configured by env, or undefined when `LLM_PROVIDER` is none/unset or its package is
 * not installed (logged with the install command).
 */
export async function chatModelFromConfig(config: Config, logger: Logger): Promise<BaseChatModel | undefined> {
  const provider = config.LLM_PROVIDER;
  if (provider === 'none') return undefined;
  const model = config.LLM_MODEL ?? (provider === 'ollama' ? 'llama3.1' : provider === 'anthropic' ? 'claude-3-5-haiku-latest' : 'gpt-4o-mini');
  const fields: Record<string, unknown> = { modelProvider: provider, temperature: 0 };
  if (provider === 'openai') {
    if (config.LLM_API_KEY) fields.apiKey = config.LLM_API_KEY;
    else if (config.LLM_BASE_URL) fields.apiKey = 'not-needed'; // local OpenAI-compatible servers ignore it
    if (config.LLM_BASE_URL) fields.configuration = { baseURL: config.LLM_BASE_URL };
  } else if (provider === 'ollama') {
    if (config.LLM_BASE_URL) fields.baseUrl = config.LLM_BASE_URL;
  } else {
    if (config.LLM_API_KEY) fields.apiKey = config.LLM_API_KEY;
    if (config.LLM_BASE_URL) fields.anthropicApiUrl = config.LLM_BASE_URL;
  }
  try {
    const { initChatModel } = await import('langchain/chat_models/universal');
    return (await initChatModel(model, fields)) as unknown as BaseChatModel;
  } catch (err) {
    logger.warn(`LLM_PROVIDER=${provider} is set but its chat model could not be created; install it with \`npm install @langchain/${provider}\`. Using the keyword router.`, { err });
    return undefined;
  }
}

/** The router for a config: LLM when configured and available, else keywords. */
export async function createRouter(engine: Engine, config: Config, logger: Logger, model?: BaseChatModel): Promise<MessageRouter> {
  const keywords = new KeywordRouter(engine);
  const chat = model ?? (await chatModelFromConfig(config, logger));
  return chat ? new LlmRouter(chat, engine, keywords, logger) : keywords;
}
