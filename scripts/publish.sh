#!/usr/bin/env bash
# Publishes ntc, ntrun and gpu-selftest (scripts/bench-gpu.sh) as NativeAOT linux-x64 single binaries (Release, self-contained, no .NET needed to run)
# into OUT (default artifacts/bin) and prints their paths.
# Needs the .NET SDK and a native toolchain (gcc or clang, with zlib headers): scripts/setup.sh installs them.
# Usage: bash scripts/publish.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-artifacts/bin}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

publish() { # project, binary name
  local stage="artifacts/publish/$2"
  rm -rf "$stage"
  # PublishAot comes from the project (a global -p:PublishAot=true would reach the netstandard2.0 generator and fail).
  dotnet publish "$1" -c Release -r linux-x64 --self-contained true \
    -p:StripSymbols=true --nologo -v quiet -o "$stage"
  # Only the binary travels: the stripped symbols (.dbg) stay in the stage folder.
  cp "$stage/$2" "$OUT/$2.part"
  mv -f "$OUT/$2.part" "$OUT/$2"
  echo "$OUT/$2"
}

publish src/Plans/Ntc/Ntc.csproj ntc
publish src/Runtime/Ntrun/Ntrun.csproj ntrun
publish scripts/gpu-selftest/GpuSelfTest.csproj gpu-selftest
