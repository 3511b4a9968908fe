#!/usr/bin/env bash
# Streaming I/O micro-benchmark: reads a file (created when missing) through DirectReader (O_DIRECT, then buffered)
# and MmapSource at QD 32, and prints GB/s per path. Not a test: run it by hand or on the GPU machine.
#   bash scripts/bench-io.sh --publish          # here: NativeAOT bench-io into artifacts/bin (carry artifacts/bin)
#   bash scripts/bench-io.sh FILE [SIZE] [extra bench-io options]   # there: default SIZE 8G
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--publish" ]]; then
  stage=artifacts/publish/bench-io
  rm -rf "$stage"
  dotnet publish scripts/bench-io/BenchIo.csproj -c Release -r linux-x64 --self-contained true -p:PublishAot=true \
    -p:StripSymbols=true --nologo -v quiet -o "$stage"
  mkdir -p artifacts/bin
  cp "$stage/bench-io" artifacts/bin/bench-io.part && mv -f artifacts/bin/bench-io.part artifacts/bin/bench-io
  echo artifacts/bin/bench-io
  exit 0
fi
file="${1:?usage: bench-io.sh --publish | FILE [SIZE] [options]}"; size="${2:-8G}"; shift $(( $# >= 2 ? 2 : 1 ))
if [[ -x artifacts/bin/bench-io ]]; then bench=(artifacts/bin/bench-io)
else bench=(dotnet run --project scripts/bench-io/BenchIo.csproj -c Release --); fi
"${bench[@]}" "$file" --create "$size" --mode direct "$@"
"${bench[@]}" "$file" --mode buffered --drop-cache "$@"
"${bench[@]}" "$file" --mode mmap --drop-cache "$@"
