using ILGPU;

namespace Engine.Kernels;

/// <summary>y = x / sqrt(mean(x²) + eps) · w per token row (Zhang &amp; Sennrich 2019; ggml_rms_norm then ggml_mul).
/// One group per token; the sum of squares is reduced over the group. The normalized row is also written quantized
/// (<see cref="Quantize"/>, the next matmuls' input): a warp's 32 consecutive elements are one block, so the
/// quantize kernel's launch is fused away.</summary>
public static class RmsNorm
{
    public static void Run(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ArrayView<byte> yq, int cols, int nTokens, float eps)
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
        // Warp-uniform bounds (every lane takes part in the block reductions), over the padded blocks too.
        int padded = Quantize.Blocks(cols) * Quantize.BlockElements;
        for (int i = Group.IdxX; i - Warp.LaneIdx < padded; i += Group.DimX)
        {
            float v = 0;
            if (i < cols)
            {
                v = x[row + i] * scale * w[i];
                y[row + i] = v;
            }
            Quantize.Store(v, yq, Grid.IdxX, cols, i);
        }
    }
}
