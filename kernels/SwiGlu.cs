using ILGPU;

namespace Engine.Kernels;

/// <summary>y = silu(gate)·up, silu(g) = g / (1 + e^−g) (Shazeer 2020, "GLU Variants Improve Transformer").</summary>
public static class SwiGlu
{
    public static void Run(Index1D index, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> y, int n)
    {
        Pdl.Wait();
        y[index] = Silu(gate[index]) * up[index];
    }

    public static float Silu(float g) => g / (1f + MathF.Exp(-g));
}
