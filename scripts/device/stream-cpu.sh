#!/usr/bin/env bash
# CPU-backend streaming on the lent GPU machine (16 cores, its disk): an 8B-shaped Q8_0 with 8 layers, planned
# resident (cpu-only) and with budgets that stream most layers (h100-80g profile, tiny VRAM and RAM budgets, so tiers
# B and C), run with ntrun --backend cpu: --benchmark rows and the streaming link table, O_DIRECT and mmap.
# Usage: bash scripts/publish.sh here, then through the device tool with carry ["artifacts/bin"] (the device
# copies the session's own checkout: a helper's worktree files must be copied into an ignored folder of it first):
#   bash scripts/device/stream-cpu.sh $OUT
# Not yet run: expected per token ~0.93 GB of tier B (4 × 232 MB) and ~0.93 GB of tier C at ctx 512.
set -euo pipefail
BIN="${BIN:-artifacts/bin}"
OUT="${1:-${OUT:-/tmp/stream-cpu}}"
W=/tmp/stream-cpu-work
mkdir -p "$OUT" "$W"
nproc; grep MemAvailable /proc/meminfo; df -h /tmp | tail -1
t0=$(date +%s.%N)
"$BIN/ntc" synth --preset llama3-8b --type Q8_0 --layers 8 -o "$W/m.gguf" | tail -1
echo "synth $(echo "$(date +%s.%N) - $t0" | bc) s"
"$BIN/ntc" plan "$W/m.gguf" -o "$W/resident.plan" --hw cpu-only --ctx 512
"$BIN/ntc" plan "$W/m.gguf" -o "$W/bc.plan" --hw h100-80g --ctx 512 --vram-budget 1.2G --ram-budget 2G
"$BIN/ntc" explain "$W/bc.plan" | head -12
run() { echo "== $*"; "$BIN/ntrun" "$@" --benchmark -n 8 -r 2 -t 16 --prompt-ids "1 2 3 4 5 6 7 8" 2>&1; }
run "$W/resident.plan"
run "$W/bc.plan" --backend cpu
run "$W/bc.plan" --backend cpu --stream-from mmap
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo "(page cache dropped)" || echo "(could not drop the page cache)"
run "$W/bc.plan" --backend cpu --stream-from mmap
