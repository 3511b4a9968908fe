using ILGPU;
using Half = ILGPU.Half;

namespace Engine.Kernels;

/// <summary>rope and kv_store in one launch (op rope_store, fused=rope+kv_store): q is rotated in place as
/// <see cref="Rope"/> does; k is rotated in registers and written to the layer's f16 cache at the token's position
/// together with v (<see cref="KvStore"/>'s rows), so the rotated k never goes back to memory and a decode step has
/// one small launch fewer per layer. The same arithmetic as the two kernels in turn: the cache holds the same
/// values.</summary>
public static class RopeKvStore
{
    public static void Run(Index1D index, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<Half> kCache,
        ArrayView<Half> vCache, ArrayView<int> positions, ArrayView<float> freqFactors, int nHead, int nHeadKv, int headDim,
        int nTokens, float freqBase, float freqScale)
    {
        // The angle before the PDL wait: positions is copied from the host before the step's first kernel (which
        // every later launch follows) and the factors are weights, so only q, k and v wait for the kernels before.
        Rope.Pair(index, nHead, nHeadKv, headDim, out int t, out int head, out int pair);
        int position = positions[t];
        Rope.Angle(position, pair, headDim, freqFactors, freqBase, freqScale, out float cos, out float sin);
        Pdl.Wait();
        if (head < nHead)
        {
            Rope.Rotate(q, ((long)t * nHead + head) * headDim + 2 * pair, cos, sin);
            return;
        }
        int kvDim = nHeadKv * headDim, c = (head - nHead) * headDim + 2 * pair;
        long i = (long)t * kvDim + c, slot = (long)position * kvDim + c;
        float x0 = k[i], x1 = k[i + 1];
        kCache[slot] = (Half)(x0 * cos - x1 * sin);
        kCache[slot + 1] = (Half)(x0 * sin + x1 * cos);
        vCache[slot] = (Half)v[i];
        vCache[slot + 1] = (Half)v[i + 1];
    }
}
