/**
 * Reading the small JSON model files the vision plugin ships beside its heads (the shoe localiser, the learnt turn):
 * one place for the MODEL_MISSING errors that name the command rebuilding the file.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { EngineError } from '../../../engine/errors.ts';

/**
 * Reads `file` and validates it with `parse`. MODEL_MISSING (message and `details.rebuild` naming `rebuild`) when the
 * file is absent, not JSON, or rejected by `parse`; `what` names the model in the message ("The angle model").
 */
export function readModelFile<T>(file: string, what: string, rebuild: string, parse: (json: unknown) => T): T {
  if (!existsSync(file)) {
    throw new EngineError('MODEL_MISSING', `${what} ${path.basename(file)} is missing. Rebuild it with \`${rebuild}\`.`, { details: { rebuild } });
  }
  try {
    return parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new EngineError('MODEL_MISSING', `${what} ${path.basename(file)} is unreadable (${why}). Rebuild it with \`${rebuild}\`.`, { details: { rebuild } });
  }
}
