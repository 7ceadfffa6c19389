#!/usr/bin/env node
'use strict';
// Thin launcher: the compiled CLI under dist/ when it is fresh (`npm run build`, run by `npm ci`), else the
// TypeScript sources through tsx's CommonJS hook (config/prebuilt.ts says which).
const path = require('node:path');

let fresh = false;
try {
  fresh = require(path.join(__dirname, '..', 'dist', 'config', 'prebuilt.js')).prebuiltFresh();
} catch {
  fresh = false;
}
if (fresh) {
  require(path.join(__dirname, '..', 'dist', 'cli', 'main.js'));
} else {
  require('tsx/cjs');
  require('../cli/main.ts');
}
