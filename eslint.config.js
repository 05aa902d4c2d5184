// ESLint flat config: typescript-eslint recommended rules plus the import boundaries of STYLE.md —
// bot → jobs → plugins → engine, never back; the engine imports no transport or queue library.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const transportLibs = ['discord.js', 'discord.js/*', '@discordjs/*', 'express', 'express/*', 'multer', 'bullmq', 'bullmq/*', '@bull-board/*', 'commander'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'coverage/**', 'solescope-out/**', '**/*.min.js', '.tmp*', 'tmp/**', 'out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', performance: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', fetch: 'readonly', structuredClone: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', queueMicrotask: 'readonly', setImmediate: 'readonly' } },
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': 'off',
    },
  },
  {
    files: ['engine/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: transportLibs, message: 'engine/ must not import transports or the queue library.' },
            { group: ['**/bot/**', '**/jobs/**', '**/plugins/**'], message: 'engine/ imports nothing above it (bot → jobs → plugins → engine).' },
          ],
        },
      ],
    },
  },
  {
    files: ['plugins/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['discord.js', 'discord.js/*', 'express', 'multer', 'commander'], message: 'plugins/ stay transport-free.' },
            { group: ['**/bot/**', '**/jobs/**'], message: 'plugins/ may import only engine/ and their own files.' },
          ],
        },
      ],
    },
  },
  {
    files: ['jobs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/bot/**', 'discord.js', 'express'], message: 'jobs/ must not import bot/ or transports.' }] },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
