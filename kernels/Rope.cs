using ILGPU;

namespace Engine.Kernels;

/// <summary>Rotary position embedding in place on q and k, one thread per rotated pair (Su et al. 2021, RoFormer),
/// ggml's normal mode (pairs of adjacent values; llama.cpp's converter permutes Q/K weights to match):
/// θ = pos · freq_scale · base^(−2i/head_dim) / freq_factors[i], the factors being Llama 3.1's rope_freqs.weight
/// (an empty view when the model has none). θ is reduced modulo 2π in double so the fast sin/cos stay accurate at
/// long positions.</summary>
public static class Rope
{
    public static void Run(Index1D index, ArrayView<float> q, ArrayView<float> k, ArrayView<int> positions,
        ArrayView<float> freqFactors, int nHead, int nHeadKv, int headDim, int nTokens, float freqBase, float freqScale)
    {
        Pdl.Wait();
        Pair(index, nHead, nHeadKv, headDim, out int t, out int head, out int pair);
        Angle(positions[t], pair, headDim, freqFactors, freqBase, freqScale, out float cos, out float sin);
        if (head < nHead) Rotate(q, ((long)t * nHead + head) * headDim + 2 * pair, cos, sin);
        else Rotate(k, ((long)t * nHeadKv + head - nHead) * headDim + 2 * pair, cos, sin);
    }

    /// <summary>Thread <paramref name="index"/>'s token, head (q heads first, then k heads) and pair.</summary>
    public static void Pair(int index, int nHead, int nHeadKv, int headDim, out int t, out int head, out int pair)
    {
        int half = headDim / 2;
        pair = index % half;
        int rest = index / half;
        int heads = nHead + nHeadKv;
        head = rest % heads;
        t = rest / heads;
    }

    /// <summary>cos θ and sin θ of pair <paramref name="pair"/> at position <paramref name="position"/>.</summary>
    public static void Angle(int position, int pair, int headDim, ArrayView<float> freqFactors, float freqBase, float freqScale,
        out float cos, out float sin)
    {
        float theta = position * freqScale * MathF.Pow(freqBase, -2f * pair / headDim);
        if (freqFactors.Length > 0) theta /= freqFactors[pair];
        const double TwoPi = 2 * Math.PI;
        double turns = theta / TwoPi;
        float reduced = (float)(theta - Math.Floor(turns) * TwoPi);
        cos = MathF.Cos(reduced);
        sin = MathF.Sin(reduced);
    }

    public static void Rotate(ArrayView<float> v, long i, float cos, float sin)
    {
        float x0 = v[i], x1 = v[i + 1];
        v[i] = x0 * cos - x1 * sin;
        v[i + 1] = x0 * sin + x1 * cos;
    }
}
