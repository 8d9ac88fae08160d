#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need when it is
# missing (Debian/Ubuntu packages, Node.js and ble-mcp-test's client from npm),
# starts the services they use (Mosquitto, PostgreSQL) when installed but down,
# then runs `cargo test` with any arguments given. Building gattway itself needs
# only Rust; the tests also exercise BlueZ (a stand-in on a private D-Bus), Home
# Assistant's own Python code (from PyPI, in a venv the tests make), and a broker.
set -euo pipefail
cd "$(dirname "$0")"

say() { echo "test.sh: $*"; }

# Root installs directly; others through sudo when they have it.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1; fi
}

need=()
for pkg in dbus-daemon dbus-bin python3-dbusmock python3-venv mosquitto postgresql nats-server systemd chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  need+=(nodejs npm)
fi
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "cannot install ${need[*]}: this script provisions Debian and Ubuntu (apt-get)."
    say "Install the equivalents (dbus-daemon, python3 with dbusmock and venv, mosquitto, PostgreSQL, nats-server,"
    say "systemd-analyze, Chromium at /usr/bin/chromium, Node.js with npm) and run: cargo test"
    exit 2
  fi
  say "installing ${need[*]}"
  if ! as_root apt-get update -qq || ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; then
    say "could not install ${need[*]} (root or sudo needed); install them, then run: cargo test"
    exit 2
  fi
fi

# Services the integration tests use: started when installed but down.
start_if_down() { # name port command...
  local name=$1 port=$2; shift 2
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    if command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; then
      say "starting $name"; as_root "$@" || say "could not start $name"
    fi
  fi
}
start_if_down postgresql 5432 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql 2>/dev/null | head -1)" main start
start_if_down mosquitto 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf
start_if_down nats 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
  -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log

# ble-mcp-test's own client, pinned (tests/compat/package-lock.json).
say "npm ci (tests/compat)"
(cd tests/compat && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
# playwright-core, which drives Debian's Chromium (never a downloaded browser).
say "npm ci (tests/browser)"
(cd tests/browser && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
# The MCP Inspector's CLI, pinned (tests/inspector/package-lock.json).
say "npm ci (tests/inspector)"
(cd tests/inspector && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

say "cargo test --workspace $*"
exec cargo test --workspace "$@"
