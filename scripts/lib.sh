# Shared set-up steps for scripts/run and scripts/test. Each step is idempotent and installs what is missing
# (Debian packages via apt-get, npm packages via npm ci), so both commands work on a fresh Debian machine.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
MYSQL_HOST="${MYSQL_HOST:-127.0.0.1}"
MYSQL_PORT="${MYSQL_PORT:-3306}"

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root for: $*"; return 1; fi
}

APT_UPDATED=""
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

mysql_up() { mysqladmin --protocol=tcp -h "$MYSQL_HOST" -P "$MYSQL_PORT" -uroot ping >/dev/null 2>&1; }

# MariaDB on 127.0.0.1:3306 with a passwordless root over TCP: start it if it is installed, install it if not.
ensure_mariadb() {
  if mysql_up; then return 0; fi
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server mariadb-client
  say "starting MariaDB"
  as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  if [ ! -d /var/lib/mysql/mysql ]; then as_root mariadb-install-db --user=mysql >/dev/null 2>&1 || true; fi
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    --bind-address=127.0.0.1 --port="$MYSQL_PORT" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do mysql_up && break; sleep 0.5; done
  mysql_up || { say "MariaDB did not start"; return 1; }
  # Debian's root uses unix_socket auth; the app and the tests connect over TCP without a password.
  as_root mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" >/dev/null 2>&1 || true
  mysql_up
}

# Node.js and the pinned development OpenID provider.
ensure_provider_deps() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  if [ ! -d "$ROOT/devtools/oidc-provider/node_modules/oidc-provider" ]; then
    say "installing the development OpenID provider (npm ci)"
    (cd "$ROOT/devtools/oidc-provider" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

# Starts the development provider in the background. $1: port (0 = any free port). Sets ISSUER and PROVIDER_PID.
start_provider() {
  local port="$1" issuer_file
  issuer_file="$(mktemp)"
  rm -f "$issuer_file"
  DEV_OIDC_PORT="$port" DEV_OIDC_ISSUER_FILE="$issuer_file" \
    node "$ROOT/devtools/oidc-provider/server.mjs" >"${PROVIDER_LOG:-/dev/null}" 2>&1 &
  PROVIDER_PID=$!
  for _ in $(seq 1 100); do [ -s "$issuer_file" ] && break; kill -0 "$PROVIDER_PID" 2>/dev/null || break; sleep 0.1; done
  if [ ! -s "$issuer_file" ]; then say "the development OpenID provider did not start (log: ${PROVIDER_LOG:-none})"; return 1; fi
  ISSUER="$(cat "$issuer_file")"
  rm -f "$issuer_file"
  export ISSUER PROVIDER_PID
}

# Rust toolchain: the machine's rustup install, or Debian's cargo as a fallback.
ensure_rust() {
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  command -v cargo >/dev/null 2>&1 || apt_install cargo rustc build-essential pkg-config
}

# For the scripts that run release builds (bench, soak): SQL as root, a free loopback port, and an instance of the
# release binary against the development provider ($ISSUER) on MariaDB.
sql() { mariadb --protocol=tcp -h "$MYSQL_HOST" -P "$MYSQL_PORT" -uroot "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts target/release/signin in the background and sets LAST_PID. Other APP__ settings come from the caller's
# environment, e.g. `APP__LOG__FILTER=warn start_release_app …`. Metrics go to a port of their own, since several
# instances share the machine. The provider is $ISSUER, its client $CLIENT_ID / $CLIENT_SECRET (default: the
# development provider's).
start_release_app() { # $1: port, $2: database, $3: public URL, $4: attempt-cookie key, $5: log file
  APP_ENVIRONMENT=development APP__SERVER__PORT="$1" APP__SERVER__PUBLIC_URL="$3" \
    APP__DATABASE__URL="mysql://root@$MYSQL_HOST:$MYSQL_PORT/$2" APP__OIDC__ISSUER="$ISSUER" \
    APP__OIDC__CLIENT_ID="${CLIENT_ID:-signin-dev}" APP__OIDC__CLIENT_SECRET="${CLIENT_SECRET:-dev-secret-not-for-production}" \
    APP__LOGIN__COOKIE_KEYS="$4" APP__SERVER__METRICS_ADDRESS=127.0.0.1:0 APP__SESSION__SECURE=false \
    "$ROOT/target/release/signin" serve >"$5" 2>&1 &
  LAST_PID=$!
}

# Waits until a URL answers 2xx (10 s at most); else shows the log and exits.
wait_ready() { # $1: URL, $2: log to show if it does not, $3: what it is
  for _ in $(seq 1 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  curl -fs "$1" >/dev/null || { cat "$2"; say "$3 did not start"; exit 1; }
}
