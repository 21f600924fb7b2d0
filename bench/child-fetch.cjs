// One cold fetch in a process of its own, for peak RSS:
//   node bench/child-fetch.cjs URL DEST MASTER_DIR SHA256_HEX      prints one JSON line
//   node bench/child-fetch.cjs --baseline                         RSS of a process that only loaded the engine
'use strict';
const path = require('node:path');

const dist = path.join(__dirname, '..', 'packages', 'core', 'dist');

async function main() {
  const { ImageCache } = require(dist);
  if (process.argv[2] === '--baseline') {
    console.log(JSON.stringify({ maxRSSKiB: process.resourceUsage().maxRSS }));
    return;
  }
  const [url, dest, masterDir, sha] = process.argv.slice(2);
  const cache = new ImageCache({ masterDir, forceRaw: false });
  const t = performance.now();
  const r = await cache.fetchImage(url, dest, { expectedChecksum: `sha256:${sha}` });
  const s = (performance.now() - t) / 1000;
  console.log(
    JSON.stringify({
      s,
      maxRSSKiB: process.resourceUsage().maxRSS,
      cacheHit: r.cacheHit,
      bytesDownloaded: r.bytesDownloaded,
      durations: r.durations,
      cpuS: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
