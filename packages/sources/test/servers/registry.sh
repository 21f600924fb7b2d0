#!/bin/bash
# Copied from ../shared/recipes/registry.sh (verified recipe) for imagecache's integration tests.
# Real OCI distribution registry (Debian 12: docker-registry 2.8.2+ds1) on 127.0.0.1,
# filesystem storage in DIR. No docker needed: the demo pushes with curl.
#
#   registry.sh install                         # apt-get docker-registry apache2-utils qemu-utils ...
#   registry.sh start PORT DIR [AUTH] [TLS]     # background; prints the registry PID
#   registry.sh demo  PORT DIR                  # push blob+config+manifest(+index), fetch back
#   registry.sh stop  DIR                       # kill the PIDs in DIR/*.pid and wait
#   registry.sh all   [PORT]                    # install, then each AUTH mode: start, demo, stop
#
# AUTH: none (default) | htpasswd (HTTP Basic) | token (Bearer, with a tiny Node token server on
#       PORT+1 whose PID goes to DIR/token.pid). User/password: $REG_USER / $REG_PASS
#       (default tester / s3cret). The token server accepts any user name with that password,
#       also an empty one (ironic's "pre-shared token" sends Basic base64(":" + secret)).
# TLS:  0 (default, plain http) | 1 (self-signed cert for IP 127.0.0.1 in DIR/tls.crt; use
#       curl --cacert DIR/tls.crt). Ironic's OciClient always builds https:// URLs.
set -euo pipefail
REG_USER=${REG_USER:-tester}
REG_PASS=${REG_PASS:-s3cret}

do_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker-registry apache2-utils qemu-utils \
    jq curl openssl >/dev/null
}

do_start() {
  local port=$1 dir=$2 auth=${3:-none} tls=${4:-0} scheme=http tport=$(($1 + 1))
  mkdir -p "$dir/data"
  echo "$auth" > "$dir/auth"; echo "$tls" > "$dir/tls"
  local authyaml= tlsyaml=
  if [ "$tls" = 1 ]; then
    scheme=https
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
      -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
      -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
    tlsyaml="  tls:
    certificate: $dir/tls.crt
    key: $dir/tls.key"
  fi
  case $auth in
    none) ;;
    htpasswd)
      htpasswd -Bbn "$REG_USER" "$REG_PASS" > "$dir/htpasswd"   # registry accepts bcrypt only
      authyaml="auth:
  htpasswd:
    realm: test-registry
    path: $dir/htpasswd" ;;
    token)
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-token-issuer \
        -keyout "$dir/token.key" -out "$dir/token.crt" 2>/dev/null
      write_token_server "$dir/token-server.js"
      REG_PASS=$REG_PASS TOKEN_KEY="$dir/token.key" TOKEN_CRT="$dir/token.crt" \
        nohup node "$dir/token-server.js" "$tport" > "$dir/token.log" 2>&1 &
      echo $! > "$dir/token.pid"
      authyaml="auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: test-registry
    issuer: test-issuer
    rootcertbundle: $dir/token.crt" ;;
    *) echo "unknown AUTH $auth" >&2; return 2 ;;
  esac
  cat > "$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: test-only-upload-state-secret
$tlsyaml
$authyaml
EOF
  local t0=$(date +%s.%N)
  nohup docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
  local pid=$!
  echo $pid > "$dir/registry.pid"
  local ca=(); [ "$tls" = 1 ] && ca=(--cacert "$dir/tls.crt")
  for _ in $(seq 1 100); do   # /v2/ answers 200, or 401 with auth: either means "up"
    code=$(curl -s "${ca[@]}" -o /dev/null -w '%{http_code}' "$scheme://127.0.0.1:$port/v2/" || true)
    [ "$code" = 200 ] || [ "$code" = 401 ] && break
    kill -0 $pid 2>/dev/null || { cat "$dir/registry.log" >&2; return 1; }
    sleep 0.05
  done
  if [ "$auth" = token ]; then
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$tport/" && break; sleep 0.05; done
  fi
  echo "docker-registry pid $pid up on $scheme://127.0.0.1:$port (auth=$auth) after $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
  echo $pid
}

write_token_server() {   # minimal Docker-token-auth issuer: RS256 JWT, cert chain in x5c
  cat > "$1" <<'EOF'
const http = require('http'), crypto = require('crypto'), fs = require('fs');
const key = fs.readFileSync(process.env.TOKEN_KEY);
const der = new crypto.X509Certificate(fs.readFileSync(process.env.TOKEN_CRT)).raw;
const b64u = (b) => Buffer.from(b).toString('base64url');
http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname !== '/token') { res.end('token server\n'); return; }
  const m = /^Basic (.+)$/i.exec(req.headers.authorization || '');
  const [user, ...rest] = m ? Buffer.from(m[1], 'base64').toString().split(':') : [];
  if (!m || rest.join(':') !== process.env.REG_PASS) {
    res.writeHead(401, {'WWW-Authenticate': 'Basic realm="token"'}); res.end('{}'); return;
  }
  const access = u.searchParams.getAll('scope').flatMap((s) => s.split(' ')).map((s) => {
    const [type, ...r] = s.split(':'); const actions = r.pop().split(',');
    return {type, name: r.join(':'), actions};
  });
  const now = Math.floor(Date.now() / 1000);
  const head = b64u(JSON.stringify({typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')]}));
  const body = b64u(JSON.stringify({iss: 'test-issuer', sub: user || 'anonymous',
    aud: u.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now,
    jti: crypto.randomUUID(), access}));
  const sig = b64u(crypto.sign('sha256', Buffer.from(head + '.' + body), key));
  const token = head + '.' + body + '.' + sig;
  res.writeHead(200, {'Content-Type': 'application/json'});
  res.end(JSON.stringify({token, access_token: token, expires_in: 300,
    issued_at: new Date(now * 1000).toISOString()}));
}).listen(+process.argv[2], '127.0.0.1');
EOF
}

# Whether PID is still the server this script started: its command line or environment names NEEDLE (the
# server's own folder). A PID file outlives its process, and PIDs are reused within minutes on a busy machine:
# killing by a stale one could take down an unrelated process (another suite's worker).
ours() {
  local text
  text=$(tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline"; tr '\0' '\n' 2>/dev/null <"/proc/$1/environ") || true
  [[ $text == *"$2"* ]]
}

do_stop() {
  local dir=$1 f pid
  for f in "$dir/registry.pid" "$dir/token.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    ours "$pid" "$dir" || continue
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do ours "$pid" "$dir" || continue 2; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# ---- demo: push an OCI artifact with curl only, then read it back ----
do_demo() {
  local port=$1 dir=$2 auth tls R ca=() A=() repo=demo/disk
  auth=$(cat "$dir/auth"); tls=$(cat "$dir/tls")
  R=http://127.0.0.1:$port; [ "$tls" = 1 ] && { R=https://127.0.0.1:$port; ca=(--cacert "$dir/tls.crt"); }
  local C=(curl -sS "${ca[@]}")
  echo "== GET /v2/ without credentials" >&2
  "${C[@]}" -o /dev/null -D - "$R/v2/" | tr -d '\r' | grep -iE '^(HTTP|www-authenticate|docker-distribution)' >&2
  case $auth in
    htpasswd) A=(-u "$REG_USER:$REG_PASS") ;;
    token)
      local www realm service tok
      www=$("${C[@]}" -o /dev/null -D - "$R/v2/$repo/tags/list" | tr -d '\r' | grep -i '^www-authenticate' )
      realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$www")
      service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$www")
      echo "== token from $realm (service=$service)" >&2
      tok=$(curl -sS -G -u "$REG_USER:$REG_PASS" "$realm" --data-urlencode "service=$service" \
              --data-urlencode "scope=repository:$repo:pull,push" | jq -r .token)
      A=(-H "Authorization: Bearer $tok")
      echo "== wrong password at the token server: $(curl -s -o /dev/null -w '%{http_code}' -u "$REG_USER:nope" "$realm?service=$service")" >&2 ;;
  esac
  C+=("${A[@]}")

  push_blob() {   # $1 = file; POST opens an upload session, PUT ?digest= closes it (monolithic)
    local f=$1 dg loc
    dg=sha256:$(sha256sum < "$f" | cut -d' ' -f1)
    loc=$("${C[@]}" -X POST -o /dev/null -D - "$R/v2/$repo/blobs/uploads/" | tr -d '\r' \
          | sed -n 's/^[Ll]ocation: //p')
    case $loc in /*) loc=$R$loc ;; esac               # 2.8 sends an absolute URL; be safe
    case $loc in *\?*) loc="$loc&digest=$dg" ;; *) loc="$loc?digest=$dg" ;; esac
    "${C[@]}" -X PUT -o /dev/null -w "  PUT blob $dg -> %{http_code}\n" \
      -H 'Content-Type: application/octet-stream' --data-binary @"$f" "$loc" >&2
    echo "$dg"
  }
  put_manifest() {   # $1 = ref, $2 = file, $3 = media type; prints the Docker-Content-Digest
    "${C[@]}" -X PUT -o /dev/null -D - -H "Content-Type: $3" --data-binary @"$2" \
      "$R/v2/$repo/manifests/$1" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'
  }

  local w=$dir/work; mkdir -p "$w"
  qemu-img create -f qcow2 "$w/disk-amd64.qcow2" 16M >/dev/null
  qemu-img create -f qcow2 "$w/disk-arm64.qcow2" 32M >/dev/null
  printf '{}' > "$w/empty.json"              # ORAS/OCI 1.1 "empty" config
  local cfg; cfg=$(push_blob "$w/empty.json")  # sha256:44136fa3...
  local arch m=() md=()
  for arch in amd64 arm64; do
    local f="$w/disk-$arch.qcow2" lay size
    lay=$(push_blob "$f"); size=$(stat -c %s "$f")
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"artifactType\":\"application/vnd.example.disk-image\",\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"$cfg\",\"size\":2},\"layers\":[{\"mediaType\":\"application/octet-stream\",\"digest\":\"$lay\",\"size\":$size,\"annotations\":{\"org.opencontainers.image.title\":\"disk-$arch.qcow2\"}}],\"annotations\":{\"disktype\":\"qcow2\"}}" > "$w/manifest-$arch.json"
    local d; d=$(put_manifest "$arch" "$w/manifest-$arch.json" application/vnd.oci.image.manifest.v1+json)
    echo "  PUT manifest :$arch -> $d (local sha256: $(sha256sum < "$w/manifest-$arch.json" | cut -c1-16)...)" >&2
    m+=("{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$d\",\"size\":$(stat -c %s "$w/manifest-$arch.json"),\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"},\"annotations\":{\"disktype\":\"qcow2\"}}")
    md+=("$d")
  done
  printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[${m[0]},${m[1]}]}" > "$w/index.json"
  local idx; idx=$(put_manifest latest "$w/index.json" application/vnd.oci.image.index.v1+json)
  echo "  PUT index :latest -> $idx" >&2

  echo "== GET tags/list" >&2; "${C[@]}" "$R/v2/$repo/tags/list" >&2; echo >&2
  echo "== HEAD manifest :latest, Accept: OCI index" >&2
  "${C[@]}" -I -H 'Accept: application/vnd.oci.image.index.v1+json' "$R/v2/$repo/manifests/latest" \
    | tr -d '\r' | grep -iE '^(HTTP|content-type|content-length|docker-content-digest)' >&2
  echo "== GET manifest :latest with a Docker-only Accept -> $("${C[@]}" -o /dev/null -w '%{http_code}' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "$R/v2/$repo/manifests/latest")" >&2
  echo "== GET manifest @${md[0]} (by digest, Accept: OCI manifest)" >&2
  "${C[@]}" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$R/v2/$repo/manifests/${md[0]}" -o "$w/got.json" \
    -D - | tr -d '\r' | grep -iE '^(HTTP|content-type|docker-content-digest)' >&2
  cmp "$w/got.json" "$w/manifest-amd64.json" && echo "  manifest bytes identical to what was PUT" >&2
  local lay; lay=$(jq -r '.layers[0].digest' "$w/got.json")
  echo "== GET blob $lay" >&2
  "${C[@]}" -D - -o "$w/blob" "$R/v2/$repo/blobs/$lay" | tr -d '\r' \
    | grep -iE '^(HTTP|content-type|content-length|docker-content-digest|etag)' >&2
  cmp "$w/blob" "$w/disk-amd64.qcow2" && echo "  blob identical to disk-amd64.qcow2" >&2
  echo "== missing manifest -> $("${C[@]}" -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$R/v2/$repo/manifests/nope")," \
       "missing blob -> $("${C[@]}" -o /dev/null -w '%{http_code}' "$R/v2/$repo/blobs/sha256:$(printf x | sha256sum | cut -d' ' -f1)")" >&2
}

case ${1:-all} in
  install) do_install ;;
  start) do_start "$2" "$3" "${4:-none}" "${5:-0}" ;;
  demo) do_demo "$2" "$3" ;;
  stop) do_stop "$2" ;;
  all)
    port=${2:-15000}
    t0=$(date +%s.%N); do_install; echo "install: $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
    for mode in "none 0" "htpasswd 0" "token 1"; do
      dir=$(mktemp -d /tmp/registry.XXXXXX)
      echo "######## AUTH/TLS = $mode" >&2
      do_start "$port" "$dir" $mode >/dev/null
      do_demo "$port" "$dir"
      do_stop "$dir"; rm -rf "$dir"
    done ;;
  *) sed -n 2,18p "$0"; exit 2 ;;
esac
