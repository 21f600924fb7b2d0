#!/usr/bin/env bash
# Installs everything, then fetches a real image through a real cache, embedded (no Redis):
# a local HTTP server serves a 64 MiB image; the first fetch downloads it, the second is a hit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

work="${IMAGECACHE_DEMO_DIR:-$(mktemp -d /tmp/imagecache-demo.XXXXXX)}"
mkdir -p "$work/www" "$work/dest"
[ -f "$work/www/disk.img" ] || head -c $((64 << 20)) /dev/urandom > "$work/www/disk.img"
sum="$(sha256sum "$work/www/disk.img" | cut -d' ' -f1)"
node -e '
  const http = require("http"), fs = require("fs");
  const file = process.argv[1];
  const s = http.createServer((req, res) => {
    const st = fs.statSync(file);
    res.writeHead(200, { "content-length": st.size, "last-modified": st.mtime.toUTCString() });
    if (req.method === "HEAD") return res.end();
    fs.createReadStream(file).pipe(res);
  }).listen(0, "127.0.0.1", () => console.log(s.address().port));
  process.on("SIGTERM", () => process.exit(0));
' "$work/www/disk.img" > "$work/port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$work/port")/disk.img"

echo "== miss: $url -> $work/dest/first.img"
./bin/imagecache fetch "$url" "$work/dest/first.img" --master-dir "$work/master" --no-force-raw --checksum "sha256:$sum"
echo "== hit: the same image to a second destination"
./bin/imagecache fetch "$url" "$work/dest/second.img" --master-dir "$work/master" --no-force-raw --checksum "sha256:$sum" --json
echo "== the cache"
./bin/imagecache ls --master-dir "$work/master"
ls -li "$work/dest"
