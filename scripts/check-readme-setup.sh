#!/usr/bin/env bash
# Tries README's "Set-up (two commands)" as a newcomer would: a clean clone, an empty
# build cache, and no system library for the build (PKG_CONFIG=/bin/false). The first
# command must serve the simulator (it answers /healthz); the second must pass.
# Slow (everything is built twice from nothing): run by hand, not in CI.
#   scripts/check-readme-setup.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
# The server runs in its own process group, so stopping it stops cargo and gattway.
trap 'kill -- "-${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

# The two commands, as README shows them: the fenced block under "## Set-up".
block="$(awk '/^## Set-up/{s=1} s&&/^```sh/{b=1;next} b&&/^```/{exit} b{print}' "$repo/README.md")"
serve="$(echo "$block" | sed -n 1p | sed 's/ *#.*//')"
test_cmd="$(echo "$block" | sed -n 2p | sed 's/ *#.*//')"
[ -n "$serve" ] && [ -n "$test_cmd" ] || { echo "README's set-up block not found"; exit 1; }
echo "serve: $serve"
echo "test:  $test_cmd"

git clone -q "$repo" "$work/gattway"
cd "$work/gattway"
export CARGO_TARGET_DIR="$work/target" PKG_CONFIG=/bin/false

# The first command, on a free port, until it answers.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
GATTWAY_LISTEN="127.0.0.1:$port" GATTWAY_DATABASE="sqlite://$work/g.db" setsid bash -c "$serve" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 1800); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  kill -0 "$server" 2>/dev/null || { echo "the server exited:"; tail -20 "$work/serve.log"; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/healthz" && echo
kill -- "-$server"; wait "$server" 2>/dev/null || true

# The second command.
bash -c "$test_cmd"
echo "README's set-up works from a clean clone with an empty cache and no system library."
