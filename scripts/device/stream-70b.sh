#!/usr/bin/env bash
# Issue 7's headline on the GPU machine: a 70B-shaped Q4_K_M cut to 40 layers (about 22 GB), planned with a 12 GiB
# VRAM budget (about half the layers streamed from pinned RAM), then with a RAM budget that pushes layers to NVMe
# (tier C, O_DIRECT from the GGUF file); ntrun --benchmark on CUDA with the link table. Binaries from artifacts/bin.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN="${BIN:-artifacts/bin}"; W="${TMPDIR:-/tmp}/stream-70b"; mkdir -p "$W"
m="$W/70b-40L-Q4_K_M.gguf"
[[ -f "$m" ]] || /usr/bin/time -f "synth %e s" "$BIN/ntc" synth --preset llama3-70b --type Q4_K_M --layers 40 \
  --vocab-from models/vocab/ggml-vocab-llama-bpe.gguf -o "$m" 2>&1 | grep -v "%)"
ls -la "$m"
prompt=$(seq -s ' ' 1000 1127)   # 128 token ids
for case in "B:--vram-budget 12G" "BC:--vram-budget 12G --ram-budget ${RAM_C:-6G}"; do
  name=${case%%:*}; args=${case#*:}
  "$BIN/ntc" plan "$m" --hw auto --ctx 1024 --batch 128 $args -o "$W/$name.plan" || continue
  echo "== $name ($args)"
  "$BIN/ntrun" "$W/$name.plan" --backend cuda --benchmark --prompt-ids "$prompt" -n ${TG:-16} -r 2 2>&1 | grep -v "^$"
done
