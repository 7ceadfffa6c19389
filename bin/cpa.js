#!/usr/bin/env node
'use strict';
// Thin launcher: the CLI is TypeScript, run through tsx's CommonJS hook so `npx cpa` works right after `npm ci`.
require('tsx/cjs');
require('../worker/cli.ts');
