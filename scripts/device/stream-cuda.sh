#!/usr/bin/env bash
# GPU machine: streamed layers (tiers B and C) on the CUDA backend, from published binaries (bash scripts/publish.sh
# here, carry artifacts/bin; this script publishes nothing):
#   bash scripts/device/stream-cuda.sh [$OUT]
# 1. Shared models, planned for this GPU (--hw auto) with budgets that force tiers B and C (ctx 128, batch 8, so the
#    prompt runs as multi-token passes and decode as one-token passes): 32 greedy tokens and the logits of each
#    streamed plan against the resident plan, both on the CUDA backend; one row per plan: tiers, identical tokens,
#    logits NMSE (streamed vs resident). Expected: identical, NMSE 0 (the same kernels over the same bytes).
# 2. An 8B-shaped model with 16 layers (TYPE, default Q4_K_M), planned with --vram-budget half its size (tier B) and
#    again with a RAM budget that pushes layers to tier C: ntrun --benchmark (pp128, tg32) and the link table
#    (bytes per token per tier, achieved GB/s beside the plan's).
# PART=shared or PART=8b runs one half (each well under the device tool's 10 minutes; the synth is the slow step).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN="${BIN:-artifacts/bin}"
OUT="${1:-${OUT:-/tmp/stream-cuda}}"
W="${TMPDIR:-/tmp}/stream-cuda-work"
TYPE="${TYPE:-Q4_K_M}"
PART="${PART:-all}"
BACKEND="${BACKEND:-cuda}"   # cpu: a dry run of this script on a machine without a GPU
mkdir -p "$OUT" "$W"
for b in ntc ntrun; do
  [[ -x "$BIN/$b" ]] || { echo "stream-cuda: $BIN/$b missing: run scripts/publish.sh and carry artifacts/bin" >&2; exit 2; }
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fails=0

# name | model | extra ntc arguments (empty: resident)
cases=(
  "resident|stories260K|"
  "all-B|stories260K|--vram-budget 700K --ram-budget 2M"
  "B+C|stories260K|--vram-budget 700K --ram-budget 1000K"
  "A+B+C|stories260K|--vram-budget 900K --ram-budget 800K"
  "B+C-3slots|stories260K|--vram-budget 880K --ram-budget 1000K --slots 3"
  "A+B+C-1slot|stories260K|--vram-budget 700K --ram-budget 600K --slots 1"
  "resident|stories260K-pad256-Q8_0|"
  "all-B|stories260K-pad256-Q8_0|--vram-budget 1000K --ram-budget 4M"
  "B+C|stories260K-pad256-Q8_0|--vram-budget 1000K --ram-budget 1600K"
  "A+C|stories260K-pad256-Q8_0|--vram-budget 1400K --ram-budget 1000K"
)
nmse() {
  python3 - "$1" "$2" <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64); b = np.fromfile(sys.argv[2], dtype=np.float32).astype(np.float64)
print("size mismatch" if a.size != b.size or a.size == 0 else f"{np.sum((a-b)**2)/max(np.sum(a*a), 1e-300):.3e}")
PY
}
rows=()
[[ "$PART" == 8b ]] && cases=()
for c in "${cases[@]}"; do
  IFS='|' read -r name m args <<< "$c"
  plan="$W/$m.$name.plan"
  # shellcheck disable=SC2086
  if ! "$BIN/ntc" plan "models/$m.gguf" --hw auto --ctx 128 --batch 8 $args -o "$plan" > "$W/$m.$name.plan.log" 2>&1; then
    rows+=("| $m | $name | plan failed: $(tail -1 "$W/$m.$name.plan.log") | | | |"); fails=$((fails + 1)); continue
  fi
  tiers=$("$BIN/ntc" explain "$plan" | sed -n 's/^layers: //p')
  ids=$(sed -n 's/^prompt_tokens: *//p' "models/$m.ref.txt")
  tokens=$("$BIN/ntrun" "$plan" --backend "$BACKEND" --prompt-ids "$ids" -n 32 --temp 0 --ids --ignore-eos \
    --dump-logits "$W/$m.$name.f32" 2> "$W/$m.$name.err")
  rc=$?
  echo "$tokens" > "$W/$m.$name.tokens"
  if [[ "$name" == resident ]]; then
    ref_tokens="$tokens"; ref_logits="$W/$m.$name.f32"
    rows+=("| $m | $name | $tiers | rc $rc | (reference) | |"); [[ $rc == 0 ]] || fails=$((fails + 1)); continue
  fi
  if [[ "$tiers" == *"0 B (pinned RAM) + 0 C (NVMe)"* ]]; then
    rows+=("| $m | $name | $tiers | rc $rc | NOT STREAMED: the budgets did not force tiers B/C here | |"); fails=$((fails + 1)); continue
  fi
  if [[ $rc == 0 && -n "$tokens" && "$tokens" == "$ref_tokens" ]]; then same=yes; else same="NO: $(head -c 300 "$W/$m.$name.err" | tr '\n' ' ')"; fails=$((fails + 1)); fi
  rows+=("| $m | $name | $tiers | rc $rc | $same | $(nmse "$ref_logits" "$W/$m.$name.f32") |")
done
echo "| model | plan | layers | ntrun | tokens = resident | logits NMSE vs resident |"
echo "| --- | --- | --- | --- | --- | ---: |"
printf '%s\n' "${rows[@]}" | tee "$OUT/shared-models.md"
if [[ "$PART" == shared ]]; then echo "failures: $fails"; [[ $fails == 0 ]]; exit; fi

# 8B-shaped, 16 layers.
model="$W/llama3-8b-16L-$TYPE.gguf"
echo "== ntc synth llama3-8b $TYPE 16 layers"
t0=$(date +%s)
[[ -f "$model" ]] || "$BIN/ntc" synth --preset llama3-8b --type "$TYPE" --layers 16 \
  --vocab-from models/vocab/ggml-vocab-llama-bpe.gguf -o "$model" | tail -1 || { echo "synth failed"; exit 1; }
echo "synth $(( $(date +%s) - t0 )) s, $(stat -c %s "$model") bytes"
size=$(stat -c %s "$model")
half=$(( size / 2 / 1048576 ))M
quarter=$(( size / 4 / 1048576 ))M
prompt=$(seq -s ' ' 1000 1127)   # 128 token ids
bench() {
  local label=$1; shift
  local plan="$W/8b.$label.plan"
  echo "== $label: ntc plan $*"
  "$BIN/ntc" plan "$model" --hw auto --ctx 512 --batch 128 "$@" -o "$plan" || { fails=$((fails + 1)); return; }
  "$BIN/ntc" explain "$plan" | grep -E '^layers:|predict' | head -4
  "$BIN/ntrun" "$plan" --backend "$BACKEND" --benchmark --prompt-ids "$prompt" -n 32 -r 3 2>&1 | tee "$OUT/8b.$label.tg.txt"
  echo "-- prefill links (-n 0)"
  "$BIN/ntrun" "$plan" --backend "$BACKEND" --benchmark --prompt-ids "$prompt" -n 0 -r 3 2>&1 | tee "$OUT/8b.$label.pp.txt"
}
bench resident
bench tierB --vram-budget "$half"
bench tierBC --vram-budget "$half" --ram-budget "$quarter"
echo "failures: $fails"
[[ $fails == 0 ]]
