#!/usr/bin/env node
// The package's `walcast` command. walcast is TypeScript run by tsx: register
// its loader, then run the CLI (relay/main.ts reads process.argv).
import { register } from 'tsx/esm/api';

register();
await import('../relay/main.ts');
