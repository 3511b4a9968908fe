#!/usr/bin/env bash
# CPU speed of ntrun against llama.cpp (the peer harness's ref-bench), llama-bench style rows, same model, threads,
# prompt length and generation length. Not a test: numbers depend on the machine and its load.
# The engines alternate for --rounds rounds (ntrun, llama.cpp, ntrun, ...) so load from other processes falls on
# both; each round prints both rows and the tg ratio ntrun / llama.cpp, and the end the median ratio over rounds.
# -p 0 measures generation only. The machine's read bandwidth (scripts/bench-membw, 1 GiB, same threads) is
# measured before and after, and decode speed is also given as GB/s of weights streamed (file bytes × tok/s).
# Each round prints the 1-minute load average: rounds taken while other processes load the cores are noise (both
# engines slow down, llama.cpp's spinning barriers far more), so compare rounds at a load average below the cores.
# usage: scripts/bench-cpu.sh [-t THREADS] [-p PROMPT] [-n GEN] [-r REPS] [-R ROUNDS] [MODEL.gguf ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
threads=2 prompt=128 gen=128 reps=3 rounds=1
while getopts "t:p:n:r:R:" opt; do
  case $opt in t) threads=$OPTARG ;; p) prompt=$OPTARG ;; n) gen=$OPTARG ;; r) reps=$OPTARG ;; R) rounds=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
models=("$@")
[ ${#models[@]} -gt 0 ] || models=("$root/models/stories260K-pad256-F32.gguf" "$root/models/stories260K-pad256-Q4_K_M.gguf")

peer="${ENGINE_PEER_DIR:-$HOME/.cache/engine-peer}"
[ -x "$peer/cpu/ref-bench" ] || bash "$root/../shared/tools/peer/setup.sh" >/dev/null 2>&1 || bash /work/shared/tools/peer/setup.sh >/dev/null
dotnet build -c Release "$root/src/Runtime/Ntrun" -v q -nologo >/dev/null
dotnet build -c Release "$root/src/Plans/Ntc" -v q -nologo >/dev/null
dotnet build -c Release "$root/scripts/bench-membw" -v q -nologo >/dev/null
ntrun="$root/src/Runtime/Ntrun/bin/Release/net10.0/ntrun"
ntc="$root/src/Plans/Ntc/bin/Release/net10.0/ntc"
plans=$(mktemp -d)
membw="$root/scripts/bench-membw/bin/Release/net10.0/bench-membw"

# ntrun benchmarks a prompt as long as --prompt-ids (ids are replaced by random ones); -p 0 keeps a 1-token
# prompt and drops its row.
if [ "$prompt" -gt 0 ]; then ids=$(seq -s ' ' 1 "$prompt"); else ids=1; fi
# t/s of the row of test $1: the column headed "t/s" (ntrun's rows go on with predicted and measured/predicted).
rate() { awk -F'|' -v t="$1" '/\| *t\/s *\|/ { for (i = 1; i <= NF; i++) if ($i ~ /^ *t\/s *$/) c = i }
  c && $0 ~ "\\| " t " *\\|" { split($c, a, " "); print a[1] }'; }

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$membw" -t "$threads"
for m in "${models[@]}"; do
  bytes=$(stat -c %s "$m")
  plan="$plans/$(basename "$m" .gguf).plan"
  "$ntc" plan "$m" --hw cpu-only --ctx 512 --batch 64 -o "$plan" >/dev/null
  echo "## $(basename "$m") ($threads threads, $(date -u +%F), $rounds rounds)"
  ratios=()
  for ((round = 1; round <= rounds; round++)); do
    ours=$("$ntrun" "$plan" --benchmark --prompt-ids "$ids" -n "$gen" -t "$threads" -r "$reps")
    theirs=$("$peer/cpu/ref-bench" -t "$threads" -p "$prompt" -n "$gen" -r "$reps" "$m" 2>/dev/null)
    if [ "$prompt" -gt 0 ]; then echo "$ours" | grep -E "\| pp$prompt " || true; fi
    echo "$ours" | grep -E "\| tg$gen " || true
    echo "$theirs" | grep -E "\| (pp|tg)[0-9]+ " || true
    a=$(echo "$ours" | rate "tg$gen"); b=$(echo "$theirs" | rate "tg$gen")
    if [ -n "$a" ] && [ -n "$b" ]; then
      r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
      ratios+=("$r")
      awk -v a="$a" -v b="$b" -v r="$r" -v s="$bytes" -v k="$round" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
        printf "round %d: tg ratio ntrun/llama.cpp %s; weights streamed %.1f GB/s (ntrun), %.1f GB/s (llama.cpp); load average %s\n", k, r, a * s / 1e9, b * s / 1e9, l }'
    fi
  done
  if [ ${#ratios[@]} -gt 0 ]; then
    printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END {
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "tg ratio ntrun/llama.cpp over %d rounds: median %.2f, min %.2f, max %.2f\n", NR, m, v[1], v[NR] }'
  fi
done
"$membw" -t "$threads"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
