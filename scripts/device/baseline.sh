#!/usr/bin/env bash
# GPU machine: first look. PTX smoke test, synthesis speed, llama.cpp's figures on the 8B files.
# Run from the repo root with artifacts/bin (scripts/publish.sh), kernels/Ptx/obj/ptx and .carry/peer-gpu.tar.xz carried.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max --format=csv | tee "$OUT/gpu.txt"
if [ -d kernels/Ptx/obj/ptx ]; then echo "== ptx smoke"; python3 scripts/device/ptx_smoke.py kernels/Ptx/obj/ptx 2>&1 | tee "$OUT/ptx_smoke.txt"; fi
mkdir -p /tmp/peer && tar -xJf .carry/peer-gpu.tar.xz -C /tmp/peer
for t in Q8_0 Q4_0 Q4_K_M; do
  echo "== synth 8B $t"; /usr/bin/time -f "synth $t %e s" artifacts/bin/ntc synth --preset llama3-8b --type $t \
    --vocab-from models/vocab/ggml-vocab-llama-bpe.gguf -o /tmp/8b-$t.gguf 2>&1 | tail -2 | tee -a "$OUT/synth.txt"
  ls -la /tmp/8b-$t.gguf | tee -a "$OUT/synth.txt"
done
echo "== llama.cpp check"; /tmp/peer/gpu/run.sh check /tmp/8b-Q8_0.gguf 2>&1 | tail -5
for t in Q8_0 Q4_0 Q4_K_M; do
  echo "== llama.cpp bench $t"; /tmp/peer/gpu/run.sh bench /tmp/8b-$t.gguf -ngl 999 -p 512 -n 128 -r 3 2>&1 | tail -4 | tee -a "$OUT/llamacpp-bench.txt"
done
