#!/usr/bin/env bash
# GPU machine: the CUDA backend against the CPU backend on the shared models, from published binaries (carry
# artifacts/bin). For each model: a plan for this GPU, 32 greedy tokens on each backend (and on CUDA without graph
# replay), then the CUDA backend teacher-forced on the CPU's tokens (--prompt-ids prompt+tokens --n-prompt k -n 0),
# so the logits compare position by position even where a near-tie makes the free runs part; one row per model.
# "device greedy" is the CUDA run without --dump-logits: its tokens come from the plan's argmax on the GPU (the
# greedy graph, src/Runtime/Cuda/CudaModel.cs DecodeGreedy), not from the logits on the host.
# PLAN_FLAGS adds `ntc plan` flags, e.g. PLAN_FLAGS="--activations f32" for the exact mode (docs/cuda-backend.md).
# A model named synth:PRESET:TYPE[:LAYERS] is synthesized here (`ntc synth`, random weights; prompt ids 1..16): the
# shared models have head_dim 8, so only these run the attention's short kernel (head_dim 64 for tiny, 128 for
# llama3-8b). "decode NMSE" compares the logits of the two free runs (one-token steps: the decode graph and the short
# kernels), over the rows up to the first token where they part; the teacher-forced run is one prompt step.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN="${BIN:-artifacts/bin}"; TMP="${TMPDIR:-/tmp}/cvc"; mkdir -p "$TMP"
models=("$@"); [[ ${#models[@]} -eq 0 ]] && models=(stories260K stories260K-pad256-F32 stories260K-pad256-F16 llama-2-tiny-random
  stories260K-Q8_0 stories260K-Q4_0 stories260K-pad256-Q8_0 stories260K-pad256-Q4_0 stories260K-pad256-Q4_K_M
  stories260K-pad256-Q5_K_M stories260K-pad256-Q6_K)
echo "plan flags: --ctx 256 --batch 64 ${PLAN_FLAGS:-}"
echo "| model | tokens cuda = cpu | graph off = on | device greedy = cpu | logits NMSE cuda (teacher-forced) vs cpu | decode NMSE cuda vs cpu |"
echo "| --- | --- | --- | --- | ---: | ---: |"
for spec in "${models[@]}"; do
  if [[ $spec == synth:* ]]; then
    IFS=: read -r _ preset type layers <<< "$spec"
    m="synth-$preset-$type${layers:+-$layers}"; gguf="$TMP/$m.gguf"
    [[ -f $gguf ]] || "$BIN/ntc" synth --preset "$preset" --type "$type" ${layers:+--layers $layers} -o "$gguf" > /dev/null \
      || { echo "| $m | synth failed | | | | |"; continue; }
    ids=$(seq -s ' ' 1 16)
  else
    m=$spec; gguf="models/$m.gguf"; ids=$(sed -n 's/^prompt_tokens: *//p' "models/$m.ref.txt")
  fi
  plan="$TMP/$m.plan"
  "$BIN/ntc" plan "$gguf" --hw auto --ctx 256 --batch 64 ${PLAN_FLAGS:-} -o "$plan" > /dev/null || { echo "| $m | plan failed | | | | |"; continue; }
  run() { "$BIN/ntrun" "$plan" --backend "$1" --prompt-ids "$ids" -n 32 --temp 0 --ids --ignore-eos --dump-logits "$TMP/$m.$2.f32" 2>"$TMP/$m.$2.err"; }
  cpu=$(run cpu cpu); cuda=$(run cuda cuda); nog=$(ENGINE_CUDA_GRAPH=0 run cuda nograph)
  dev=$("$BIN/ntrun" "$plan" --backend cuda --prompt-ids "$ids" -n 32 --temp 0 --ids --ignore-eos 2>"$TMP/$m.dev.err")
  k=$(echo $ids | wc -w)
  "$BIN/ntrun" "$plan" --backend cuda --prompt-ids "$ids $cpu" --n-prompt "$k" -n 0 --dump-logits "$TMP/$m.forced.f32" 2>>"$TMP/$m.cuda.err" >/dev/null
  vocab=$("$BIN/ntc" inspect "$gguf" | sed -n 's/^ *vocab size *//p')
  nmse=$(python3 - "$TMP/$m.cpu.f32" "$TMP/$m.forced.f32" "$vocab" <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64); b = np.fromfile(sys.argv[2], dtype=np.float32).astype(np.float64)
n = min(a.size, b.size)   # the free run dumps a row per generated token, the forced run one more
v = int(sys.argv[3]); a = a[:n].reshape(-1, v); b = b[:n].reshape(-1, v)
rows = np.sum((a - b)**2, axis=1) / np.sum(a * a, axis=1)
far = np.nonzero(rows > 1e-9)[0]
# Where the difference starts tells a rounding flip (rows equal, then one position on) from a systematic one (all rows).
print("no logits" if n == 0 else f"{np.sum((a-b)**2)/np.sum(a*a):.3e} (rows > 1e-9: {far.size} of {rows.size}, first {far[0] if far.size else '-'})")
PY
)
  decode=$(python3 - "$TMP/$m.cpu.f32" "$TMP/$m.cuda.f32" "$vocab" "$cpu" "$cuda" <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], dtype=np.float32).astype(np.float64); b = np.fromfile(sys.argv[2], dtype=np.float32).astype(np.float64)
v = int(sys.argv[3]); ta = sys.argv[4].split(); tb = sys.argv[5].split()
# Row i gives token i; rows after the first differing token were computed from different inputs.
same = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
n = min(a.size // v, b.size // v, same + 1)
a = a[:n * v].reshape(-1, v); b = b[:n * v].reshape(-1, v)
print("no logits" if n == 0 else f"{np.sum((a-b)**2)/np.sum(a*a):.3e} ({n} rows)")
PY
)
  [[ -n "$cuda" && "$cpu" == "$cuda" ]] && same=yes || same="NO ($(head -c 200 "$TMP/$m.cuda.err"))"
  [[ "$nog" == "$cuda" ]] && g=yes || g=NO
  [[ "$dev" == "$cpu" ]] && d=yes || d="NO ($(head -c 200 "$TMP/$m.dev.err"))"
  echo "| $m | $same | $g | $d | $nmse | $decode |"
done
