using ILGPU;

namespace Engine.Kernels;

/// <summary>y = x / sqrt(mean(x²) + eps) · w per token row (Zhang &amp; Sennrich 2019; ggml_rms_norm then ggml_mul).
/// One group per token; the sum of squares is reduced over the group.</summary>
public static class RmsNorm
{
    public static void Run(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, int cols, int nTokens, float eps)
    {
        var partials = SharedMemory.Allocate<float>(32);
        long row = (long)Grid.IdxX * cols;
        float sum = 0;
        for (int i = Group.IdxX; i < cols; i += Group.DimX)
        {
            float v = x[row + i];
            sum += v * v;
        }
        float total = Reduce.GroupSum(sum, partials);
        float scale = 1f / MathF.Sqrt(total / cols + eps);
        for (int i = Group.IdxX; i < cols; i += Group.DimX)
            y[row + i] = x[row + i] * scale * w[i];
    }
}
