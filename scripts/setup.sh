#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) to run isthmus, its demo and its tests:
# Debian packages the data path, tests and benchmarks use, then the npm dependencies,
# the native addon and the TypeScript build. Idempotent: fast when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# prometheus: its promtool checks the daemons' --metrics output in test/integration/metrics.test.ts.
# chromium: the headless browser test/integration/dashboard-browser.test.ts drives (puppeteer-core).
packages=(redis-server iperf3 wireguard-go wireguard-tools nebula curl nftables iproute2 iputils-ping procps python3 make g++ prometheus ethtool chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  # --no-install-recommends: with recommends, wireguard-tools pulls in a kernel image.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

stamp=node_modules/.isthmus-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci (builds the native addon and the TypeScript)" >&2
  npm ci --no-audit --no-fund >&2
  cp package-lock.json "$stamp"
else
  npm run --silent build >&2
fi
