import * as path from 'node:path';
import { installCodeCache } from './code-cache';

// Imported first by index.ts: the engine's modules after it compile with the build's code cache (code-cache.ts).
// The build's training run names the folder whose modules it caches.
installCodeCache(path.join(__dirname, 'code-cache'), process.env.IMAGECACHE_CODE_CACHE_TRAIN || undefined);
