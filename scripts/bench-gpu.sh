#!/usr/bin/env bash
# GPU benchmark and self-test, run on the GPU machine (no .NET there) with binaries published here:
#   bash scripts/publish.sh                      # here: ntc, ntrun, gpu-selftest into artifacts/bin (carry artifacts/bin)
#   bash scripts/bench-gpu.sh [TYPES...]         # there: default TYPES Q8_0 Q4_K_M Q4_0
#   SELFTEST=0 bash scripts/bench-gpu.sh Q4_K_M  # later calls: reuse the self-test, one type per call
#   DEPTH=4096 bash scripts/bench-gpu.sh         # also tg128 after 4096 tokens of context (ntrun --benchmark -d)
# 1. gpu-selftest: every PTX module loads, every kernel family x format against the float64 reference, GEMV
#    bandwidth per format; its device copy rate is the bound below.
# 2. per type: ntc synth (Llama 3 8B shape, llama-bpe vocab) into /tmp, ntc plan --hw auto, ntrun --benchmark
#    (pp512, tg128) on the CUDA backend; decode tok/s against the bound = device copy rate / file bytes (a GEMV
#    that reads its weights once moves the bytes a copy moves per weight byte: docs/plan-format.md "prediction").
# 3. when /tmp/peer/gpu/run.sh exists (llama.cpp, carried separately): llama-bench on the same files.
# One table at the end. Nothing here is a pass/fail test except the self-test's exit status (reported).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-artifacts/bin}"
TMP="${TMPDIR:-/tmp}"
VOCAB=models/vocab/ggml-vocab-llama-bpe.gguf
types=("$@"); [[ ${#types[@]} -eq 0 ]] && types=(Q8_0 Q4_K_M Q4_0)
for b in ntc ntrun gpu-selftest; do
  [[ -x "$BIN/$b" ]] || { echo "bench-gpu: $BIN/$b missing: run scripts/publish.sh and carry artifacts/bin" >&2; exit 2; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

# SELFTEST=0 reuses the last self-test's output (its copy rate), so one 10-minute device call can go to one type.
if [[ "${SELFTEST:-1}" == 1 || ! -f "$TMP/gpu-selftest.txt" ]]; then
  echo "== gpu-selftest"
  "$BIN/gpu-selftest" | tee "$TMP/gpu-selftest.txt"
  selftest=${PIPESTATUS[0]}
  echo "$selftest" > "$TMP/gpu-selftest.rc"
else
  selftest=$(cat "$TMP/gpu-selftest.rc" 2>/dev/null || echo "?")
fi
copy=$(sed -n 's/^device copy \([0-9.]*\) GB\/s.*/\1/p' "$TMP/gpu-selftest.txt")
[[ -n "$copy" ]] || { echo "bench-gpu: the self-test reported no device copy rate" >&2; exit 1; }

prompt=$(seq -s ' ' 1000 1511)   # 512 token ids
rows=()
for t in "${types[@]}"; do
  model="$TMP/llama3-8b-$t.gguf"; plan="$TMP/llama3-8b-$t.plan"
  echo "== $t"
  [[ -f "$model" ]] || "$BIN/ntc" synth --preset llama3-8b --type "$t" --vocab-from "$VOCAB" -o "$model" || { rows+=("| $t | synth failed |"); continue; }
  ctx=$(( ${DEPTH:-0} + 256 > 1024 ? ${DEPTH:-0} + 256 : 1024 ))
  "$BIN/ntc" plan "$model" --hw auto --ctx "$ctx" --batch 512 -o "$plan" || { rows+=("| $t | plan failed |"); continue; }
  out=$("$BIN/ntrun" "$plan" --backend cuda --benchmark --prompt-ids "$prompt" -n 128 -r 3 2>&1)
  echo "$out"
  pp=$(echo "$out" | awk -F'|' '$6 ~ /pp512/ {split($7, a, " "); print a[1]}')
  tg=$(echo "$out" | awk -F'|' '$6 ~ /tg128/ {split($7, a, " "); print a[1]}')
  bytes=$(stat -c %s "$model")
  bound=$(awk -v c="$copy" -v b="$bytes" 'BEGIN { printf "%.1f", c * 1e9 / b }')
  frac=$(awk -v t="${tg:-0}" -v b="$bound" 'BEGIN { printf "%.0f%%", 100 * t / b }')
  deep=""
  if [[ "${DEPTH:-0}" -gt 0 ]]; then
    dout=$("$BIN/ntrun" "$plan" --backend cuda --benchmark --prompt-ids "$prompt" -n 128 -r 3 -d "$DEPTH" 2>&1)
    echo "$dout"
    deep=" $(echo "$dout" | awk -F'|' -v d="tg128 @ d$DEPTH" '$6 ~ d {split($7, a, " "); print a[1]}') |"
  fi
  lpp="-"; ltg="-"
  if [[ -x /tmp/peer/gpu/run.sh ]]; then
    peer=$(/tmp/peer/gpu/run.sh bench "$model" -ngl 999 -p 512 -n 128 -r 3 2>&1); echo "$peer"
    lpp=$(echo "$peer" | awk -F'|' '/pp512/ {split($(NF-1), a, " "); print a[1]}' | tail -1)
    ltg=$(echo "$peer" | awk -F'|' '/tg128/ {split($(NF-1), a, " "); print a[1]}' | tail -1)
  fi
  rows+=("| $t | $(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 2^30 }') GiB | ${tg:-fail} | $bound | $frac | ${pp:-fail} | ${ltg:-"-"} | ${lpp:-"-"} |$deep")
done

echo
echo "device copy (read + write): $copy GB/s; gpu-selftest exit $selftest"
dhead=""; dsep=""
[[ "${DEPTH:-0}" -gt 0 ]] && { dhead=" tg128 @ d$DEPTH |"; dsep=" ---: |"; }
echo "| model (8B) | file | tg128 tok/s | bound tok/s | of bound | pp512 tok/s | llama.cpp tg128 | llama.cpp pp512 |$dhead"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |$dsep"
printf '%s\n' "${rows[@]}"
[[ "$selftest" == 0 ]]
