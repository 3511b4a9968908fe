#!/usr/bin/env bash
# Prepares a fresh Debian/Ubuntu machine and runs the demo: checks the .NET SDK, installs the native toolchain that
# NativeAOT links with (only what is missing), restores, builds, publishes ntc and ntrun into artifacts/bin, then
# runs the main job on the shipped small model.
# Usage: bash scripts/setup.sh [--no-demo]
set -euo pipefail
cd "$(dirname "$0")/.."

demo=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument \"$arg\" (usage: bash scripts/setup.sh [--no-demo])" >&2; exit 2 ;;
  esac
done

# 1. The .NET SDK is expected on the machine (global.json asks for 10.0.100 or a later feature band).
if ! command -v dotnet >/dev/null 2>&1 || ! dotnet --list-sdks 2>/dev/null | grep -q '^10\.'; then
  echo "setup.sh: the .NET 10 SDK is missing: install it (https://learn.microsoft.com/dotnet/core/install/linux-debian, or 'curl -sSL https://dot.net/v1/dotnet-install.sh | bash -s -- --channel 10.0' and add ~/.dotnet to PATH), then re-run" >&2
  exit 1
fi

# 2. NativeAOT links with clang or gcc and needs the zlib headers.
packages=()
if ! command -v clang >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then packages+=(clang); fi
if [ ! -f /usr/include/zlib.h ]; then packages+=(zlib1g-dev); fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup.sh: installing ${packages[*]}"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${packages[@]}"
fi

# 3. Restore, build, publish.
dotnet restore Engine.sln
dotnet build Engine.sln -c Release --no-restore
bash scripts/publish.sh artifacts/bin

# ---------------------------------------------------------------------------------------------------------------
# DEMO: the main job on the shipped small model (models/MODELS.md: stories260K, MIT, karpathy/tinyllamas): plan it
# for this machine, then generate 32 greedy tokens on the CPU backend: the text llama.cpp generates for this prompt.
# ---------------------------------------------------------------------------------------------------------------
if [ "$demo" -eq 1 ]; then
  artifacts/bin/ntc plan models/stories260K.gguf -o artifacts/stories260K.plan
  artifacts/bin/ntrun artifacts/stories260K.plan -p "Once upon a time" -n 32 --temp 0
fi
