#!/usr/bin/env bash
# Checks that llama.cpp loads and runs every file `ntc synth` writes: tiny in each type, and a 2-layer
# llama3-1b (synthesized vocabulary and the llama-bpe vocabulary). Not a unit test: it needs the peer
# harness (bash /work/shared/tools/peer/setup.sh, or $ENGINE_PEER_DIR) which CI does not have.
#   usage: scripts/check-synth-llamacpp.sh [OUTDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peer=${ENGINE_PEER_DIR:-$HOME/.cache/engine-peer}/cpu/ref-logits
[ -x "$peer" ] || { echo "check-synth: $peer not found; run shared/tools/peer/setup.sh first" >&2; exit 2; }
out=${1:-$(mktemp -d)}
mkdir -p "$out"
dotnet build "$root/src/Plans/Ntc" -c Release -v q -nologo >/dev/null
ntc="$root/src/Plans/Ntc/bin/Release/net10.0/ntc"
fail=0
check() { # FILE
    if log=$("$peer" "$1" "Hello" 4 -t 2 2>&1) && grep -q '^gen_tokens: [0-9]' <<<"$log"; then
        echo "ok   $(basename "$1"): $(grep '^gen_tokens:' <<<"$log")"
    else
        echo "FAIL $(basename "$1")"; tail -5 <<<"$log"; fail=1
    fi
}
for t in F16 Q8_0 Q4_0 Q4_K_M Q6_K; do
    "$ntc" synth --preset tiny --type "$t" -o "$out/tiny-$t.gguf" 2>/dev/null
    check "$out/tiny-$t.gguf"
done
"$ntc" synth --preset llama3-1b --layers 2 --type Q4_K_M -o "$out/llama3-1b-L2-Q4_K_M.gguf" 2>/dev/null
check "$out/llama3-1b-L2-Q4_K_M.gguf"
"$ntc" synth --preset llama3-1b --layers 2 --type Q8_0 --vocab-from "$root/models/vocab/ggml-vocab-llama-bpe.gguf" \
    -o "$out/llama3-1b-L2-Q8_0-bpe.gguf" 2>/dev/null
check "$out/llama3-1b-L2-Q8_0-bpe.gguf"
[ -z "${1:-}" ] && rm -rf "$out"
exit $fail
