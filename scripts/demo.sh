#!/usr/bin/env bash
# The demo: prepares the machine, then builds namespaces, starts Redis, a coordinator, a
# relay and members, shows traffic through the overlay, and tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/cli/main.js demo "$@"
