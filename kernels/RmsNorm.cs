using ILGPU;

namespace Engine.Kernels;

/// <summary>y = x / sqrt(mean(x²) + eps) · w per token row (Zhang &amp; Sennrich 2019; ggml_rms_norm then ggml_mul).
/// One group per token; a thread takes four consecutive elements per step (one 16-byte load: a 4096-wide row is one
/// step of 1024 threads, so the kernel is a few dependent loads and reductions long). The sum of squares is reduced
/// over the group. The normalized row is also written quantized (<see cref="Quantize.Store4"/>, the next matmuls'
/// input), so the quantize kernel's launch is fused away.</summary>
public static class RmsNorm
{
    public static void Run(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ArrayView<byte> yq, int cols, int nTokens, float eps)
    {
        var partials = SharedMemory.Allocate<float>(32);
        long row = (long)Grid.IdxX * cols;
        const int Q = Quantize.QuadElements;
        // The norm weights do not depend on the kernels before: this thread's first four are loaded before the PDL
        // wait (they are in DRAM, the layer's weights having left L2 since the last token), the only ones a thread
        // has for rows up to 4 × 1024 wide.
        Quantize.Load4(w, 0, cols, Q * Group.IdxX, out float w0, out float w1, out float w2, out float w3);
        Pdl.Wait();
        // The thread's first four elements stay in registers for the second pass (a 4096-wide row is one pass of 1024
        // threads: no second trip to L2 after the reduction); 0 past the row, as the loads below give.
        int e0 = Q * Group.IdxX;
        Quantize.Load4(x, row, cols, e0, out float x0, out float x1, out float x2, out float x3);
        float sum = (x0 * x0 + x1 * x1) + (x2 * x2 + x3 * x3);
        for (int e = e0 + Q * Group.DimX; e < cols; e += Q * Group.DimX)
        {
            Quantize.Load4(x, row, cols, e, out float a, out float b, out float c, out float d);
            sum += (a * a + b * b) + (c * c + d * d);
        }
        float total = Reduce.GroupSum(sum, partials);
        float scale = 1f / MathF.Sqrt(total / cols + eps);
        // Warp-uniform bounds (every lane takes part in the quantize shuffles), over the padded blocks too.
        int padded = Quantize.PaddedElements(cols);
        for (int e = e0; e - Q * Warp.LaneIdx < padded; e += Q * Group.DimX)
        {
            float a = x0, b = x1, c = x2, d = x3, wa = w0, wb = w1, wc = w2, wd = w3;
            if (e != e0)
            {
                Quantize.Load4(x, row, cols, e, out a, out b, out c, out d);
                Quantize.Load4(w, 0, cols, e, out wa, out wb, out wc, out wd);
            }
            a = a * scale * wa; b = b * scale * wb; c = c * scale * wc; d = d * scale * wd;
            if ((cols & 3) == 0 && e + 3 < cols) Formats.Ld.StoreF4(y, row + e, a, b, c, d);
            else
            {
                if (e < cols) y[row + e] = a;
                if (e + 1 < cols) y[row + e + 1] = b;
                if (e + 2 < cols) y[row + e + 2] = c;
                if (e + 3 < cols) y[row + e + 3] = d;
            }
            Quantize.Store4(a, b, c, d, yq, Grid.IdxX, cols, e);
        }
    }
}
