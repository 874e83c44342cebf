#!/usr/bin/env bash
# Build the Debian package: isthmus_<version>_<arch>.deb, from this checkout.
#
#   scripts/package.sh [--out DIR] [--no-build]      (npm run package -- --out DIR)
#
# What goes where (the package's whole contents):
#   /usr/lib/isthmus/dist/…                 the compiled JavaScript, the dist/ entries of
#                                           package.json "files" (what `npm pack` ships, less .d.ts)
#   /usr/lib/isthmus/coordinator/ui/…       the dashboard's page, script and style sheet (found
#                                           from dist/coordinator/ as in a checkout)
#   /usr/lib/isthmus/node_modules/…         production dependencies only (npm ci --omit=dev)
#   /usr/lib/isthmus/native-bindings/build/Release/isthmus_native.node   the addon (stripped)
#   /usr/lib/isthmus/package.json           version and the dependency list
#   /usr/bin/isthmus                        finds a Node.js >= 20 and runs dist/cli/main.js
#   /etc/isthmus/<daemon>.yaml              settings (--config), every one commented (conffiles, 0644: no secrets)
#   /lib/systemd/system/isthmus-*.service   agent, relay, coordinator, mapper (not enabled)
#   /usr/share/doc/isthmus/…                README, docs/, the example Sentinel config
#
# Run-time dependencies only: nodejs (>= 20), libc6 (the addon's symbols), iproute2 (the agent
# runs `ip route replace` for --route-original). No Redis, compiler, iperf3 or nebula.
#
# --no-build uses dist/ and native-bindings/build as they are (the tests do: `npm test`
# compiled them a moment ago); without it the script runs `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

out=$repo
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "package: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

for tool in dpkg-deb dpkg npm node strip; do
  command -v "$tool" >/dev/null || { echo "package: $tool is required" >&2; exit 1; }
done

if [ "$build" = 1 ]; then
  echo "package: npm run build" >&2
  npm run --silent build >&2
fi

addon=native-bindings/build/Release/isthmus_native.node
for f in dist/cli/main.js "$addon"; do
  [ -f "$f" ] || { echo "package: $f is missing: run npm ci (or drop --no-build)" >&2; exit 1; }
done

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
deb="$out/isthmus_${version}_${arch}.deb"

stage=$(mktemp -d "${TMPDIR:-/tmp}/isthmus-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
lib=$stage/usr/lib/isthmus
doc=$stage/usr/share/doc/isthmus
install -d -m 0755 "$lib" "$doc" "$stage/usr/bin" "$stage/etc/isthmus" "$stage/lib/systemd/system" "$stage/DEBIAN"

# 1. The JavaScript and the dashboard's files: the package.json "files" list decides, as for npm
#    pack (no tests, bench, maps).
npm pack --dry-run --json --ignore-scripts 2>/dev/null \
  | node -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf8"))[0].files) console.log(f.path)' \
  | grep -E '^(dist/|coordinator/ui/)' | grep -v '\.d\.ts$' > "$stage/files"
[ -s "$stage/files" ] || { echo "package: npm pack listed no dist/ files" >&2; exit 1; }
tar -cf - -T "$stage/files" | tar -xf - -C "$lib"
rm "$stage/files"

# 2. Production dependencies, exactly as locked. --ignore-scripts: our own "install" script would
#    run node-gyp; no production dependency has an install script of its own.
cp package.json package-lock.json "$lib/"
(cd "$lib" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error --prefer-offline >&2)
rm -f "$lib/package-lock.json" "$lib/node_modules/.package-lock.json"
# What no dependency loads at run time: its own tests, docs, benchmarks, typings and source maps
# (licences stay). Only directories right below a package root, never deeper.
find "$lib/node_modules" -regextype posix-extended -type d \
  -regex '.*/node_modules/(@[^/]+/)?[^/@][^/]*/(test|tests|docs|example|examples|benchmark|benchmarks|\.github)' \
  -prune -exec rm -rf {} +
find "$lib/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o \( -name '*.md' -not -iname 'licen[cs]e*' \) \) -delete

# 3. The addon, where native-bindings/load.ts looks for it from dist/native-bindings/.
install -d -m 0755 "$lib/native-bindings/build/Release"
install -m 0644 "$addon" "$lib/native-bindings/build/Release/"
strip --strip-unneeded "$lib/native-bindings/build/Release/isthmus_native.node"

# 4. Entry point, configuration, units, docs.
pkg=packaging/debian
install -m 0755 "$pkg/isthmus" "$stage/usr/bin/isthmus"
for d in agent relay coordinator mapper; do
  install -m 0644 "$pkg/etc/$d.yaml" "$stage/etc/isthmus/$d.yaml"
  install -m 0644 "$pkg/systemd/isthmus-$d.service" "$stage/lib/systemd/system/"
done
install -m 0644 README.md "$doc/"
cp -r docs "$doc/docs" && chmod -R u=rwX,go=rX "$doc/docs"
install -d -m 0755 "$doc/examples"
install -m 0644 "$pkg/examples/"* "$doc/examples/"

# 5. Control files. Owner and group in the archive are root (dpkg-deb --root-owner-group).
(cd "$stage/etc/isthmus" && for f in *.yaml; do echo "/etc/isthmus/$f"; done) > "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$pkg/$s" "$stage/DEBIAN/$s"; done
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$pkg/control" > "$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
