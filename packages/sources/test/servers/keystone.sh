#!/bin/bash
# Copied from ../shared/recipes/keystone.sh (verified recipe) for imagecache's integration tests.
# Real OpenStack Keystone (Debian 12: python3-keystone 2:22.0.2, "Zed") on 127.0.0.1 for
# token-auth tests of Glance (glance.sh start PORT DIR keystone). sqlite + fernet tokens.
#
#   keystone.sh install                  # apt-get python3-keystone (the `keystone` package adds
#                                        # uwsgi, dbconfig-common and a postinst: not needed)
#   keystone.sh start PORT DIR           # background server; prints its PID. Creates:
#                                        #   admin/adminpw in project admin (roles admin,member,reader)
#                                        #   demo/demopw   in project demo  (role member, reader implied)
#   keystone.sh token PORT USER PASS PROJECT   # prints an X-Auth-Token (scoped to PROJECT)
#   keystone.sh stop DIR
set -euo pipefail
PY=/usr/bin/python3   # not pyenv's python3

do_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-keystone jq curl >/dev/null
}

token() {   # PORT USER PASS PROJECT
  curl -sf -D - -o /dev/null -H 'Content-Type: application/json' "http://127.0.0.1:$1/v3/auth/tokens" \
    -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"$2\",\"domain\":{\"id\":\"default\"},\"password\":\"$3\"}}},\"scope\":{\"project\":{\"name\":\"$4\",\"domain\":{\"id\":\"default\"}}}}}" \
    | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}

do_start() {
  local port=$1 dir=$2 K="http://127.0.0.1:$1/v3"
  mkdir -p "$dir"
  cat > "$dir/keystone.conf" <<EOF
[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///$dir/keystone.sqlite
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/fernet-keys
[credential]
key_repository = $dir/credential-keys
[identity]
# bcrypt cost 4 instead of 12: each password auth ~10 ms instead of ~250 ms
password_hash_rounds = 4
[token]
# imagecache: short-lived tokens for renewal tests (default 1 h)
expiration = ${KEYSTONE_TOKEN_EXPIRATION:-3600}
EOF
  local t0=$(date +%s.%N) KM=($PY /usr/bin/keystone-manage --config-file "$dir/keystone.conf")
  {
    "${KM[@]}" db_sync
    "${KM[@]}" fernet_setup --keystone-user root --keystone-group root
    "${KM[@]}" credential_setup --keystone-user root --keystone-group root
    "${KM[@]}" bootstrap --bootstrap-password adminpw --bootstrap-region-id RegionOne \
      --bootstrap-admin-url "$K" --bootstrap-public-url "$K" --bootstrap-internal-url "$K"
  } > "$dir/keystone-manage.log" 2>&1
  # imagecache: an image service in the catalog (KEYSTONE_IMAGE_URL), written before the server starts: the
  # API's POST /v3/services fails on sqlite ("database is locked") once the server runs
  if [ -n "${KEYSTONE_IMAGE_URL:-}" ]; then
    $PY - "$dir/keystone.sqlite" "$KEYSTONE_IMAGE_URL" <<'PYEOF'
import sqlite3, sys, uuid
db = sqlite3.connect(sys.argv[1])
sid = uuid.uuid4().hex
db.execute("INSERT INTO service (id, type, enabled, extra) VALUES (?, 'image', 1, '{\"name\": \"glance\"}')", (sid,))
db.execute("INSERT INTO endpoint (id, interface, service_id, url, extra, enabled, region_id)"
           " VALUES (?, 'public', ?, ?, '{}', 1, 'RegionOne')", (uuid.uuid4().hex, sid, sys.argv[2]))
db.commit()
PYEOF
  fi
  # keystone-wsgi-public: pbr's wsgiref test server (single-threaded, HTTP/1.0)
  OS_KEYSTONE_CONFIG_DIR=$dir nohup $PY /usr/bin/keystone-wsgi-public --host 127.0.0.1 \
    --port "$port" > "$dir/keystone.log" 2>&1 &
  local pid=$!
  echo $pid > "$dir/keystone.pid"
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null "$K" && break
    kill -0 $pid 2>/dev/null || { cat "$dir/keystone.log" >&2; return 1; }
    sleep 0.1
  done
  # a non-admin project + user, like the project that owns a tenant's images
  local T H pid_demo uid_demo rid_member
  T=$(token "$port" admin adminpw admin); H=(-H "X-Auth-Token: $T" -H 'Content-Type: application/json')
  pid_demo=$(curl -sf "${H[@]}" "$K/projects" -d '{"project":{"name":"demo","domain_id":"default"}}' | jq -r .project.id)
  uid_demo=$(curl -sf "${H[@]}" "$K/users" -d '{"user":{"name":"demo","password":"demopw","domain_id":"default"}}' | jq -r .user.id)
  rid_member=$(curl -sf "${H[@]}" "$K/roles?name=member" | jq -r '.roles[0].id')
  curl -sf "${H[@]}" -X PUT "$K/projects/$pid_demo/users/$uid_demo/roles/$rid_member"
  echo "keystone pid $pid up on $K after $(echo "$(date +%s.%N) - $t0" | bc) s (db_sync+bootstrap included)" >&2
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
  local pid; pid=$(cat "$1/keystone.pid")
  ours "$pid" "OS_KEYSTONE_CONFIG_DIR=$1" || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do ours "$pid" "OS_KEYSTONE_CONFIG_DIR=$1" || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

case ${1:-} in
  install) do_install ;;
  start) do_start "$2" "$3" ;;
  token) token "$2" "$3" "$4" "$5" ;;
  stop) do_stop "$2" ;;
  *) sed -n 2,12p "$0"; exit 2 ;;
esac
