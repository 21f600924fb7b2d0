#!/bin/bash
# Copied from ../shared/recipes/glance.sh (verified recipe); imagecache adds GLANCE_POLICY (extra policy lines).
# Real OpenStack Glance (Debian 12: python3-glance 2:25.1.0, "Zed") on 127.0.0.1,
# standalone: sqlite DB, local filesystem store, no Keystone.
#
#   glance.sh install                      # apt-get python3-glance qemu-utils jq curl
#   glance.sh start PORT DIR [AUTH]        # background server; prints its PID; state only in DIR
#   glance.sh demo  PORT DIR               # create + upload + read back with curl (AUTH=noauth)
#   glance.sh stop  DIR                    # kill the PID in DIR/glance-api.pid and wait
#   glance.sh all   [PORT]                 # install, start in a mktemp dir, demo, stop
#
# AUTH (default noauth):
#   noauth  : paste pipeline with "unauthenticated-context": every request is an admin context
#             with no roles and no project; no headers needed; created images have owner=null.
#             A policy file in DIR opens the role:admin-only actions (publicize, deactivate...).
#   headers : paste pipeline with glance's ordinary "context" middleware but no authtoken: glance
#             trusts the headers keystonemiddleware would set. Send
#               X-Identity-Status: Confirmed  X-Roles: admin|member,reader  X-Project-Id: <p>
#               X-User-Id: <u>
#             Requests without X-Identity-Status: Confirmed get an anonymous read-only context
#             (allow_anonymous_access=True): they see public/community images only.
#   keystone: real token auth (keystonemiddleware authtoken + context) against a Keystone started
#             by keystone.sh at $KEYSTONE_URL (default http://127.0.0.1:15500); glance's service
#             user is that Keystone's admin/adminpw. Send X-Auth-Token: <token>; without one -> 401.
set -euo pipefail

PY=/usr/bin/python3   # NOT the pyenv `python3` first on PATH: glance lives in Debian's python

do_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # python3-glance is enough (the API code + all deps); the `glance-api` package adds uwsgi,
  # dbconfig-common, mariadb libs and a postinst that writes /etc/glance -- none of it needed.
  apt-get install -y -qq --no-install-recommends python3-glance qemu-utils jq curl >/dev/null
}

do_start() {
  local port=$1 dir=$2 auth=${3:-noauth} flavor
  mkdir -p "$dir"/{images,staging,tasks,lock}
  case $auth in
    noauth) flavor= ;;
    headers) flavor=headers ;;
    keystone) flavor=keystone ;;
    *) echo "unknown AUTH $auth" >&2; return 2 ;;
  esac
  cat > "$dir/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $port
# 0 = serve in this one process (no fork), so the PID below is the whole server
workers = 0
use_stderr = true
debug = false
enabled_backends = fs:file
allow_anonymous_access = true
[database]
connection = sqlite:///$dir/glance.sqlite
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $dir/images
[os_glance_staging_store]
filesystem_store_datadir = $dir/staging
[os_glance_tasks_store]
filesystem_store_datadir = $dir/tasks
[paste_deploy]
config_file = $dir/glance-api-paste.ini
flavor = $flavor
[oslo_policy]
policy_file = $dir/policy.yaml
[oslo_concurrency]
lock_path = $dir/lock
[keystone_authtoken]
www_authenticate_uri = ${KEYSTONE_URL:-http://127.0.0.1:15500}
auth_url = ${KEYSTONE_URL:-http://127.0.0.1:15500}
auth_type = password
username = admin
password = adminpw
project_name = admin
user_domain_id = default
project_domain_id = default
# imagecache: validate every token with Keystone (no in-process cache), so a revoked token is refused at once
token_cache_time = -1
EOF
  cat > "$dir/glance-api-paste.ini" <<'EOF'
[pipeline:glance-api]
pipeline = healthcheck versionnegotiation unauthenticated-context rootapp
[pipeline:glance-api-headers]
pipeline = healthcheck versionnegotiation context rootapp
[pipeline:glance-api-keystone]
pipeline = healthcheck versionnegotiation authtoken context rootapp
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app
[app:apiversions]
paste.app_factory = glance.api.versions:create_resource
[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory
[filter:healthcheck]
paste.filter_factory = oslo_middleware:Healthcheck.factory
[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory
[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
[filter:unauthenticated-context]
paste.filter_factory = glance.api.middleware.context:UnauthenticatedContextMiddleware.factory
EOF
  if [ "$auth" = noauth ]; then
    # the noauth context has roles=[], so rules written as role:admin would always say 403
    printf '%s\n' '"publicize_image": ""' '"deactivate": ""' '"reactivate": ""' \
      > "$dir/policy.yaml"
  else
    : > "$dir/policy.yaml"
  fi
  # imagecache: extra policy rules (YAML lines), e.g. a download refused for one image name (403 tests)
  if [ -n "${GLANCE_POLICY:-}" ]; then printf '%s\n' "$GLANCE_POLICY" >> "$dir/policy.yaml"; fi
  [ -s "$dir/policy.yaml" ] || echo '{}' > "$dir/policy.yaml"
  local t0=$(date +%s.%N)
  $PY -c 'import sys; from glance.cmd.manage import main; sys.argv[0]="glance-manage"; sys.exit(main())' \
    --config-file "$dir/glance-api.conf" db_sync > "$dir/db_sync.log" 2>&1
  nohup $PY -c 'import sys; from glance.cmd.api import main; sys.argv[0]="glance-api"; sys.exit(main())' \
    --config-file "$dir/glance-api.conf" > "$dir/glance-api.log" 2>&1 &
  local pid=$!
  echo $pid > "$dir/glance-api.pid"
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/healthcheck" && break
    kill -0 $pid 2>/dev/null || { cat "$dir/glance-api.log" >&2; return 1; }
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthcheck"
  echo "glance-api pid $pid up on 127.0.0.1:$port after $(echo "$(date +%s.%N) - $t0" | bc) s (db_sync included)" >&2
  echo $pid
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
  local dir=$1 pid
  pid=$(cat "$dir/glance-api.pid")
  ours "$pid" "$dir" || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do ours "$pid" "$dir" || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

do_demo() {
  local port=$1 dir=$2 G="http://127.0.0.1:$1" id
  qemu-img create -f qcow2 "$dir/demo.qcow2" 16M >/dev/null
  echo "== POST /v2/images" >&2
  id=$(curl -sf -X POST "$G/v2/images" -H 'Content-Type: application/json' \
        -d '{"name":"demo","disk_format":"qcow2","container_format":"bare","visibility":"public"}' \
       | jq -r .id)
  echo "id=$id" >&2
  echo "== PUT /v2/images/$id/file" >&2
  curl -sf -o /dev/null -w '%{http_code}\n' -X PUT "$G/v2/images/$id/file" \
       -H 'Content-Type: application/octet-stream' --data-binary @"$dir/demo.qcow2"   # 204
  echo "== GET /v2/images/$id" >&2
  curl -sf "$G/v2/images/$id" | jq '{status,size,virtual_size,checksum,os_hash_algo,os_hash_value,disk_format,container_format,visibility,owner,updated_at}'
  echo "local: md5 $(md5sum < "$dir/demo.qcow2" | cut -d' ' -f1) sha512 $(sha512sum < "$dir/demo.qcow2" | cut -c1-32)..." >&2
  echo "== GET /v2/images/$id/file" >&2
  curl -sf -D - -o "$dir/demo.back" "$G/v2/images/$id/file" | tr -d '\r' | grep -iE '^(HTTP|content-(length|md5|type))'
  cmp "$dir/demo.qcow2" "$dir/demo.back" && echo "downloaded bytes identical" >&2
}

case ${1:-all} in
  install) do_install ;;
  start) do_start "$2" "$3" "${4:-noauth}" ;;
  demo) do_demo "$2" "$3" ;;
  stop) do_stop "$2" ;;
  all)
    port=${2:-19292}
    t0=$(date +%s.%N); do_install; echo "install: $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
    dir=$(mktemp -d /tmp/glance.XXXXXX)
    do_start "$port" "$dir" noauth >/dev/null
    do_demo "$port" "$dir"
    do_stop "$dir"; rm -rf "$dir" ;;
  *) sed -n 2,22p "$0"; exit 2 ;;
esac
