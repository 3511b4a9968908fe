#!/usr/bin/env bash
# CPU speed of ntrun against llama.cpp (the peer harness's ref-bench), llama-bench style rows, same model, threads,
# prompt length and generation length. Not a test: numbers depend on the machine and its load.
# usage: scripts/bench-cpu.sh [-t THREADS] [-p PROMPT] [-n GEN] [-r REPS] [MODEL.gguf ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
threads=2 prompt=128 gen=128 reps=3
while getopts "t:p:n:r:" opt; do
  case $opt in t) threads=$OPTARG ;; p) prompt=$OPTARG ;; n) gen=$OPTARG ;; r) reps=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
models=("$@")
[ ${#models[@]} -gt 0 ] || models=("$root/models/stories260K-pad256-F32.gguf" "$root/models/stories260K-pad256-Q4_K_M.gguf")

peer="${ENGINE_PEER_DIR:-$HOME/.cache/engine-peer}"
[ -x "$peer/cpu/ref-bench" ] || bash "$root/../shared/tools/peer/setup.sh" >/dev/null 2>&1 || bash /work/shared/tools/peer/setup.sh >/dev/null
dotnet build -c Release "$root/src/Runtime/Ntrun" -v q -nologo >/dev/null
ntrun="$root/src/Runtime/Ntrun/bin/Release/net10.0/ntrun"

ids=$(seq -s ' ' 1 "$prompt")   # ntrun benchmarks a prompt as long as --prompt-ids (ids are replaced by random ones)
for m in "${models[@]}"; do
  echo "## $(basename "$m") ($threads threads, $(date -u +%F))"
  echo "ntrun:"
  "$ntrun" "$m" --benchmark --prompt-ids "$ids" -n "$gen" -t "$threads" -r "$reps"
  echo "llama.cpp:"
  "$peer/cpu/ref-bench" -t "$threads" -p "$prompt" -n "$gen" -r "$reps" "$m" 2>/dev/null
done
