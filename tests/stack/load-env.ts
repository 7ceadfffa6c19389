import path from 'node:path';
import { readEnvFile } from '../../config/env';

// Every stack test process sees the settings `stack.sh up` wrote (.cpa-stack.env), under the real environment.
const file = readEnvFile(path.resolve(__dirname, '..', '..', '.cpa-stack.env'));
for (const [k, v] of Object.entries(file)) if (process.env[k] === undefined) process.env[k] = v;
