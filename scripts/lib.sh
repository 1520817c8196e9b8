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
