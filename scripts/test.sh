#!/usr/bin/env bash
# The whole test suite: prepares the machine (scripts/setup.sh), then `npm test`.
# Tests that need root (TUN devices, network namespaces, wireguard-go interop) run when
# this runs as root; otherwise ava reports them as skipped and counts them in its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npm test
