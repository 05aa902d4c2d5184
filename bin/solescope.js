#!/usr/bin/env node
// The `solescope` CLI entry: registers tsx so the TypeScript sources run as they are (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../bot/cli.ts');
await main();
