using ILGPU;
using Half = ILGPU.Half;

namespace Engine.Kernels;

/// <summary>Writes this step's k and v rows into the layer's f16 caches at their positions (llama.cpp's default
/// f16 KV cache). Cache layout [n_ctx, kv_dim], a row per position.</summary>
public static class KvStore
{
    public static void Run(Index1D index, ArrayView<float> k, ArrayView<float> v, ArrayView<Half> kCache,
        ArrayView<Half> vCache, ArrayView<int> positions, int kvDim, int nTokens)
    {
        Pdl.Wait();
        int t = index / kvDim, c = index - t * kvDim;
        long slot = (long)positions[t] * kvDim + c;
        kCache[slot] = (Half)k[index];
        vCache[slot] = (Half)v[index];
    }
}
