using ILGPU;

namespace Engine.Kernels;

/// <summary>y = x / sqrt(mean(x²) + eps) · w per token row (Zhang &amp; Sennrich 2019; ggml_rms_norm then ggml_mul).
/// A row is cut into slices of <see cref="SliceElements"/> (4 per thread of a 256-thread group), one group each
/// (grid ⌈cols/1024⌉ × n_tokens): every group sums the squares of the whole row itself, the same loads in the same
/// order, so every group gets the same scale bit for bit, and then normalizes and quantizes its own slice. One group of
/// 1024 threads per row (until session 7) was a single SM's chain of a load, a 32-warp reduction and the stores,
/// ~2.3 µs of a decode step each time. The sum's loads are four quads a thread an iteration, all issued before their
/// adds (a loop of one quad an iteration waited for each load in turn); the slice's own quad is kept from them, not
/// loaded again. The normalized row is also written quantized (<see cref="Quantize.Store4"/>, the next matmuls'
/// input), so the quantize kernel's launch is fused away.</summary>
public static class RmsNorm
{
    /// <summary>Elements a group normalizes: 4 per thread of the spec's 256-thread group (grid ceil_div(cols, 1024)).</summary>
    public const int SliceElements = Quantize.QuadElements * 256;

    public static void Run(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ArrayView<byte> yq, int cols, int nTokens, float eps)
    {
        var partials = SharedMemory.Allocate<float>(32);
        const int Q = Quantize.QuadElements;
        int t = Grid.IdxY, slice = Q * Group.DimX;
        long row = (long)t * cols;
        int first = Q * Group.IdxX, e = Grid.IdxX * slice + first;
        // The norm weights do not depend on the kernels before: this thread's four are loaded before the PDL wait
        // (they are in DRAM, the layer's weights having left L2 since the last token).
        Quantize.Load4(w, 0, cols, e, out float w0, out float w1, out float w2, out float w3);
        Pdl.Wait();
        float sum = 0, a = 0, b = 0, c = 0, d = 0;
        for (int i = first; i < cols; i += 4 * slice)
        {
            Quantize.Load4(x, row, cols, i, out float a0, out float b0, out float c0, out float d0);
            Quantize.Load4(x, row, cols, i + slice, out float a1, out float b1, out float c1, out float d1);
            Quantize.Load4(x, row, cols, i + 2 * slice, out float a2, out float b2, out float c2, out float d2);
            Quantize.Load4(x, row, cols, i + 3 * slice, out float a3, out float b3, out float c3, out float d3);
            sum += (a0 * a0 + b0 * b0) + (c0 * c0 + d0 * d0);
            sum += (a1 * a1 + b1 * b1) + (c1 * c1 + d1 * d1);
            sum += (a2 * a2 + b2 * b2) + (c2 * c2 + d2 * d2);
            sum += (a3 * a3 + b3 * b3) + (c3 * c3 + d3 * d3);
            // This group's quad of the slice (elements past cols load as 0, as Load4 gives them).
            if (e == i) { a = a0; b = b0; c = c0; d = d0; }
            if (e == i + slice) { a = a1; b = b1; c = c1; d = d1; }
            if (e == i + 2 * slice) { a = a2; b = b2; c = c2; d = d2; }
            if (e == i + 3 * slice) { a = a3; b = b3; c = c3; d = d3; }
        }
        float total = Reduce.GroupSum(sum, partials);
        float scale = 1f / MathF.Sqrt(total / cols + eps);
        // Whole warps past the padded row leave (every lane of a warp takes part in the quantize shuffles).
        if (e - Q * Warp.LaneIdx >= Quantize.PaddedElements(cols)) return;
        a = a * scale * w0; b = b * scale * w1; c = c * scale * w2; d = d * scale * w3;
        if ((cols & 3) == 0 && e + 3 < cols) Formats.Ld.StoreF4(y, row + e, a, b, c, d);
        else
        {
            if (e < cols) y[row + e] = a;
            if (e + 1 < cols) y[row + e + 1] = b;
            if (e + 2 < cols) y[row + e + 2] = c;
            if (e + 3 < cols) y[row + e + 3] = d;
        }
        Quantize.Store4(a, b, c, d, yq, t, cols, e);
    }
}
