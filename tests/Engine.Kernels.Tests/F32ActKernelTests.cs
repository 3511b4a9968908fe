using Engine.Kernels.Tests.Reference;
using ILGPU;
using ILGPU.Runtime;
using Xunit;

namespace Engine.Kernels.Tests;

/// <summary>The f32act entry points (<see cref="Engine.Kernels.Formats.F32Act{T}"/>: a quantized format with f32
/// activations, the plan's <c>--activations f32</c>) against the float64 reference with the UNquantized x: the
/// kernel dequantizes the weights exactly as the reference does and multiplies x itself, so only f32 accumulation
/// differs (the int8 entries are held to this only at <c>QuantizationLimit</c>, 5e-4). xq is passed all zeros: an
/// entry that took the int8 path would return zeros and fail.</summary>
public class F32ActKernelTests
{
    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (var f in ReferenceFormats.Quantized)
        {
            int be = ReferenceFormats.BlockElements(f);
            // An odd block count (2-aligned Q8_0/Q4_0 rows alternate), rows and tokens off the group sizes (4, 4).
            data.Add(f, 5, be == 32 ? 32 * 3 : 256, 1);
            data.Add(f, 33, be == 32 ? 32 * 37 : 256 * 3, 6);
        }
        return data;
    }

    public static TheoryData<string> Formats() => new(ReferenceFormats.Quantized);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gemv_F32Act_matches_the_f32_reference(string format, int rows, int cols, int tokens)
    {
        var rng = new Random(rows * 7901 + cols * 37 + tokens);
        var h = KernelHarness.Shared;
        byte[] w = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        using var wb = h.Upload(w);
        using var xb = h.Upload(x);
        using var qb = h.Upload(new byte[Engine.Kernels.Quantize.RowBytes(cols) * tokens]);
        using var yb = h.Allocate<float>((long)rows * tokens);
        h.Launch($"Gemv_{format}_F32Act", wb.View, xb.View, qb.View, yb.View, rows, cols, tokens);
        Nmse.Check($"gemv {format} f32act {rows}x{cols}x{tokens}", yb.GetAsArray1D(), Products(format, w, x, rows, cols, tokens), WeightKernelTests.GemvLimit);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void GemvAdd_F32Act_adds_the_f32_products(string format)
    {
        int rows = 9, cols = ReferenceFormats.BlockElements(format) * 3, tokens = 5;
        var rng = new Random(cols * 23 + format.Length);
        var h = KernelHarness.Shared;
        byte[] w = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens), y0 = ReferenceFormats.Gaussian(rng, rows * tokens);
        using var wb = h.Upload(w);
        using var xb = h.Upload(x);
        using var qb = h.Upload(new byte[Engine.Kernels.Quantize.RowBytes(cols) * tokens]);
        using var yb = h.Upload(y0);
        using var part = h.Allocate<float>(1);
        using var sync = h.Allocate<int>(1);
        h.Launch($"GemvAdd_{format}_F32Act", wb.View, xb.View, qb.View, yb.View, part.View, sync.View, rows, cols, tokens);
        var expected = Products(format, w, x, rows, cols, tokens);
        for (int i = 0; i < expected.Length; i++) expected[i] += y0[i];
        Nmse.Check($"gemv_add {format} f32act", yb.GetAsArray1D(), expected, WeightKernelTests.GemvLimit);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void GemvSwiGlu_F32Act_matches_the_f32_reference(string format)
    {
        int rows = 7, cols = ReferenceFormats.BlockElements(format) * 5, tokens = 3;
        var rng = new Random(cols * 41 + format.Length);
        var h = KernelHarness.Shared;
        byte[] gate = ReferenceFormats.Random(format, rows, cols, rng), up = ReferenceFormats.Random(format, rows, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        using var gb = h.Upload(gate);
        using var ub = h.Upload(up);
        using var xb = h.Upload(x);
        using var qb = h.Upload(new byte[Engine.Kernels.Quantize.RowBytes(cols) * tokens]);
        using var yb = h.Allocate<float>((long)rows * tokens);
        h.Launch($"GemvSwiGlu_{format}_F32Act", gb.View, ub.View, xb.View, qb.View, yb.View, rows, cols, tokens);
        double[] g = Products(format, gate, x, rows, cols, tokens), u = Products(format, up, x, rows, cols, tokens);
        var expected = g.Select((a, i) => a / (1 + Math.Exp(-a)) * u[i]).ToArray();
        Nmse.Check($"gemv_swiglu {format} f32act", yb.GetAsArray1D(), expected, WeightKernelTests.GemvLimit);
    }

    /// <summary>[tokens, rows] of Σ dequantized w · x in float64.</summary>
    private static double[] Products(string format, byte[] w, float[] x, int rows, int cols, int tokens)
    {
        var y = new double[rows * tokens];
        for (int r = 0; r < rows; r++)
        {
            double[] wr = ReferenceFormats.DequantizeRow(format, w, r, cols);
            for (int t = 0; t < tokens; t++)
            {
                double s = 0;
                for (int i = 0; i < cols; i++) s += wr[i] * x[t * cols + i];
                y[t * rows + r] = s;
            }
        }
        return y;
    }
}
