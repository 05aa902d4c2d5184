/**
 * CLI transport: `npx solescope <command> [args] [--flags] [--json] [--out DIR]`.
 * Every registered command becomes a subcommand (space-separated names nest: `dataset import`), its
 * positionals and flags derived from the command's schema. `--json` prints exactly one envelope object;
 * exit codes come from the error catalogue.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import cliProgress from 'cli-progress';
import {
  ERROR_CATALOGUE,
  EngineError,
  coerceStrings,
  progressBar,
  toCliOptions,
  toEngineError,
  type Engine,
  type Envelope,
  type InvokeResult,
  type ProgressEvent,
} from '../engine/index.ts';
import { toEnvelope } from './envelope.ts';
import type { Runtime } from './runtime.ts';

/** Where output goes (injectable for tests). */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  readonly isTTY: boolean;
  readonly cwd: string;
}

const processIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  isTTY: Boolean(process.stderr.isTTY),
  cwd: process.cwd(),
};

/** Global flags understood before the command: `--json`, `--out DIR`. */
export interface GlobalFlags {
  readonly json: boolean;
  readonly out?: string;
}

/** Split the global flags out of argv (they may appear anywhere). */
export function extractGlobalFlags(argv: readonly string[]): { flags: GlobalFlags; rest: string[] } {
  const rest: string[] = [];
  let json = false;
  let out: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--json') json = true;
    else if (a === '--out') {
      out = argv[i + 1];
      i++;
    } else if (a.startsWith('--out=')) out = a.slice(6);
    else rest.push(a);
  }
  return { flags: { json, ...(out !== undefined ? { out } : {}) }, rest };
}

/** Render progress on a TTY as a bar, otherwise as occasional stage lines on stderr. */
function progressRenderer(io: CliIo, json: boolean): { onProgress: (e: ProgressEvent) => void; stop: () => void } {
  if (json) return { onProgress: () => undefined, stop: () => undefined };
  if (io.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: ' {bar} {percentage}% | {stage}', hideCursor: true, clearOnComplete: true, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      onProgress: (e) => {
        const stage = e.stage ?? e.message ?? (e.queuePosition ? `queued #${e.queuePosition}` : '');
        if (!started) {
          bar.start(100, 0, { stage });
          started = true;
        }
        bar.update(Math.round((e.fraction ?? 0) * 100), { stage });
      },
      stop: () => {
        if (started) bar.stop();
      },
    };
  }
  let lastStage = '';
  return {
    onProgress: (e) => {
      const stage = e.stage ?? e.message ?? '';
      if (stage !== lastStage) {
        lastStage = stage;
        io.stderr(`${e.fraction !== undefined ? `${progressBar(e.fraction, 10)} ` : ''}${stage}\n`);
      }
    },
    stop: () => undefined,
  };
}

/** Print a result (envelope or human text) and return the exit code. */
function render(result: InvokeResult, flags: GlobalFlags, io: CliIo): number {
  const outDir = path.resolve(io.cwd, flags.out ?? 'solescope-out');
  let madeDir = false;
  const envelope: Envelope = toEnvelope(result, (img) => {
    if (!madeDir) {
      mkdirSync(outDir, { recursive: true });
      madeDir = true;
    }
    const file = path.join(outDir, path.basename(img.name));
    writeFileSync(file, img.png);
    return { path: file };
  });
  if (flags.json) {
    io.stdout(`${JSON.stringify(envelope)}\n`);
  } else if (envelope.ok) {
    if (envelope.title) io.stdout(`${envelope.title}\n`);
    io.stdout(`${envelope.text}\n`);
    for (const f of envelope.fields ?? []) io.stdout(`  ${f.name}: ${f.value.replace(/\n/g, '\n    ')}\n`);
    for (const img of envelope.images) io.stdout(`  image: ${img.path ?? img.name}\n`);
  } else {
    const spec = ERROR_CATALOGUE[envelope.error.code as keyof typeof ERROR_CATALOGUE] ?? ERROR_CATALOGUE.INTERNAL;
    io.stderr(`error ${envelope.error.code}: ${envelope.error.message}\n`);
    if (envelope.error.code === 'INTERNAL') io.stderr(`${spec.userMessage}\n`);
  }
  return result.ok ? 0 : result.error.spec.exitCode;
}

function fromCommanderError(err: CommanderError): EngineError {
  const message = err.message.replace(/^error: /, '');
  if (err.code === 'commander.unknownCommand') return new EngineError('UNKNOWN_COMMAND', `${message}. Run \`solescope help\` for the list.`);
  return new EngineError('BAD_INPUT', message);
}

/**
 * Build the commander program for an engine. `onRun` receives the command name and raw input.
 */
export function buildProgram(engine: Engine, onRun: (name: string, input: Record<string, unknown>) => Promise<void>): Command {
  const program = new Command('solescope')
    .description('solescope — the Sneaker-ML study as commands. Global flags: --json, --out DIR.')
    .helpCommand(false)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  const groups = new Map<string, Command>();
  const groupFor = (words: readonly string[]): Command => {
    let parent = program;
    for (let i = 0; i < words.length; i++) {
      const key = words.slice(0, i + 1).join(' ');
      let group = groups.get(key);
      if (!group) {
        group = parent.command(words[i] ?? '').exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
        groups.set(key, group);
      }
      parent = group;
    }
    return parent;
  };
  for (const [name, registered] of [...engine.commands.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const words = name.split(' ');
    const leaf = words.pop() ?? name;
    const parent = words.length > 0 ? groupFor(words) : program;
    const cmd = parent.command(leaf).description(registered.definition.description).exitOverride();
    cmd.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    // A command may also be the group of others (`models` beside `models info`): later subcommands
    // attach to it, and running the bare word runs the command itself (Discord calls it `show`).
    groups.set(name, cmd);
    const cliOptions = toCliOptions(registered.options);
    const positionals = cliOptions.filter((o) => o.positional);
    for (const p of positionals) cmd.argument(p.spec.required ? `<${p.name}>` : `[${p.name}]`, p.spec.description);
    for (const o of cliOptions) {
      // Positionals may also be given as flags (`--image x.jpg`), which scripts find clearer.
      const desc = `${o.spec.description}${o.spec.choices ? ` (${o.spec.choices.join('|')})` : ''}${o.spec.defaultValue !== undefined ? ` [default: ${JSON.stringify(o.spec.defaultValue)}]` : ''}`;
      cmd.option(o.flag, desc);
      if (o.spec.kind === 'boolean') cmd.option(o.flag.replace(/^--/, '--no-'), `Turn off ${o.name}`);
    }
    cmd.action(async (...args: unknown[]) => {
      const opts = (args[positionals.length] ?? {}) as Record<string, unknown>;
      const input: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(opts)) if (v !== undefined) input[k] = v;
      positionals.forEach((p, i) => {
        const v = args[i];
        if (v !== undefined && input[p.name] === undefined) input[p.name] = v;
      });
      await onRun(name, coerceStrings(registered.options, input));
    });
  }
  return program;
}

/**
 * Run the CLI against an engine. Returns the exit code (never calls process.exit, so tests can use it).
 */
export async function runCli(engine: Engine, argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const { flags, rest } = extractGlobalFlags(argv);
  const words = rest.filter((a) => !a.startsWith('-'));
  if (rest.length === 0 || rest[0] === '--help' || rest[0] === '-h') rest.splice(0, rest.length, 'help');
  let exit = 0;
  let ran = false;
  const progress = progressRenderer(io, flags.json);
  const program = buildProgram(engine, async (name, input) => {
    ran = true;
    const ctx = engine.createContext({
      transport: 'cli',
      caller: { id: `cli:${safeUser()}`, name: safeUser(), isModerator: true, isAdmin: true },
      allowLocalPaths: true,
      onProgress: progress.onProgress,
    });
    const result = await engine.invoke(name, input, ctx);
    progress.stop();
    exit = render(result, flags, io);
  });
  try {
    await program.parseAsync(rest, { from: 'user' });
    if (!ran) {
      // A group word alone (`solescope dataset`) or an unknown word: answer like an unknown command.
      const error = new EngineError('UNKNOWN_COMMAND', `Unknown command "${words.join(' ')}". Run \`solescope help\` for the list.`);
      exit = render({ ok: false, command: words.join(' '), error, durationMs: 0 }, flags, io);
    }
  } catch (err) {
    progress.stop();
    const error = err instanceof CommanderError ? fromCommanderError(err) : toEngineError(err);
    if (error.code === 'INTERNAL') engine.logger.error('cli failed', { err: error.cause ?? error });
    if (err instanceof CommanderError && (err.code === 'commander.helpDisplayed' || err.code === 'commander.version')) {
      io.stdout(program.helpInformation());
      return 0;
    }
    // `solescope dataset` (a group word without its subcommand): commander shows help; we answer with
    // the engine's UNKNOWN_COMMAND, which suggests the group's commands.
    const groupOnly = err instanceof CommanderError && err.code === 'commander.help';
    let finalError = error;
    if (groupOnly) {
      try {
        engine.command(words.join(' '));
      } catch (lookup) {
        finalError = toEngineError(lookup);
      }
    }
    exit = render({ ok: false, command: words.join(' '), error: finalError, durationMs: 0 }, flags, io);
  }
  return exit;
}

function safeUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'operator';
  }
}

/** Entry point (`bin/solescope.js`): build the runtime, run, exit with the catalogue's code. */
export async function main(): Promise<void> {
  const { flags } = extractGlobalFlags(process.argv.slice(2));
  let runtime: Runtime | undefined;
  let code = 1;
  try {
    const { createCliRuntime } = await import('./cli-runtime.ts');
    runtime = await createCliRuntime();
    code = await runCli(runtime.engine, process.argv.slice(2));
  } catch (err) {
    const error = toEngineError(err);
    if (error.code === 'INTERNAL') process.stderr.write(`${String((error.cause as Error | undefined)?.stack ?? error.cause)}\n`);
    if (flags.json) process.stdout.write(`${JSON.stringify({ ok: false, error: error.toJSON() })}\n`);
    else process.stderr.write(`error ${error.code}: ${error.message}\n`);
    code = error.spec.exitCode;
  } finally {
    await runtime?.close().catch(() => undefined);
  }
  process.exitCode = code;
  // Background handles (Redis, tfjs thread pools) must not keep a finished CLI alive.
  setTimeout(() => process.exit(code), 200).unref();
}
