#!/bin/sh
# clients/js/build.sh B: builds the JavaScript client and the web page into
# the build folder B (build/ or build/asan/), from the repository root:
#   B/js/src/           src/*.ts with the protocol messages protoc-gen-es
#                       generates from proto/ (gen/, never committed)
#   B/js/dist/          the package, compiled by tsc (.js and .d.ts)
#   B/web/              the dashboard page, bundled by esbuild (http.web_root)
# node_modules comes from `npm ci` in clients/js (./dev setup).
set -eu
B=${1:?usage: clients/js/build.sh BUILD_DIR}
ROOT=$(pwd)
JS=$ROOT/clients/js
NM=$JS/node_modules
if [ ! -x "$NM/.bin/tsc" ] || [ ! -x "$NM/.bin/esbuild" ] || [ ! -x "$NM/.bin/protoc-gen-es" ]; then
    echo "clients/js/build.sh: $NM is missing or incomplete: run ./dev setup (npm ci in clients/js)" >&2
    exit 1
fi
OUT=$ROOT/$B/js
WEB=$ROOT/$B/web
rm -rf "$OUT/src" "$OUT/web" "$OUT/dist" "$WEB"
mkdir -p "$OUT/src/gen" "$OUT/web" "$WEB"
cp "$JS"/src/*.ts "$OUT/src/"
cp "$JS"/web/*.ts "$OUT/web/"
# The package as npm would pack it: package.json (type: module, so tsc
# emits ES modules) and README.md beside dist/.
cp "$JS/package.json" "$OUT/"
[ ! -f "$JS/README.md" ] || cp "$JS/README.md" "$OUT/"
# Node finds the packages from the copies (and from dist/ at run time) here.
ln -sfn "$NM" "$OUT/node_modules"
protoc -Iproto --plugin=protoc-gen-es="$NM/.bin/protoc-gen-es" --es_out="$OUT/src/gen" \
    --es_opt=target=ts,import_extension=js proto/dialogue/v1/protocol.proto
cat > "$OUT/tsconfig.json" <<TSC
{
  "extends": "$JS/tsconfig.json",
  "compilerOptions": { "rootDir": ".", "outDir": "dist" },
  "include": ["src", "web"]
}
TSC
"$NM/.bin/tsc" -p "$OUT/tsconfig.json"
# The page: one script and one style sheet, nothing inline (the daemon's
# Content-Security-Policy allows neither inline scripts nor styles).
"$NM/.bin/esbuild" "$OUT/web/app.ts" --bundle --format=esm --target=es2020 --minify \
    --log-level=warning --outfile="$WEB/app.js"
cp "$JS/web/index.html" "$JS/web/app.css" "$JS/web/favicon.svg" "$WEB/"
cp "$NM/uplot/dist/uPlot.min.css" "$WEB/uplot.css"
