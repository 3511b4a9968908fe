using Engine.Kernels.Tests.Reference;
using ILGPU;
using ILGPU.Runtime;
using Xunit;

namespace Engine.Kernels.Tests;

/// <summary>The fused q/k/v projections (gemv_qkv, gemm_qkv: kernels/GemvQkv.cs, Gemm.RunQkv) write the same floats,
/// bit for bit, as three launches of the plain kernel on the three matrices (which WeightKernelTests and
/// GemmKernelTests hold to the float64 reference). Row counts are not multiples of the group's rows, so every
/// boundary between the matrices falls inside the grid's arithmetic.</summary>
public class QkvKernelTests
{
    /// <summary>(format, q rows, kv rows, cols, tokens).</summary>
    public static TheoryData<string, int, int, int, int> GemvCases()
    {
        var data = new TheoryData<string, int, int, int, int>();
        foreach (var f in ReferenceFormats.All)
        {
            int be = ReferenceFormats.BlockElements(f);
            int cols = be == 1 ? 200 : be == 32 ? 32 * 5 : 256 * 2;
            data.Add(f, 33, 6, cols, 1);
            data.Add(f, 16, 8, cols, 6);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(GemvCases))]
    public void GemvQkv_equals_three_gemvs(string format, int rows, int kvDim, int cols, int tokens) =>
        EqualsThreeLaunches("GemvQkv_" + format, "Gemv_" + format, format, rows, kvDim, cols, tokens,
            grid => Assert.Equal((uint)((rows + 3) / 4 + 2 * ((kvDim + 3) / 4)), grid));

    /// <summary>(format, q rows, kv rows, cols, tokens): q spans two 128-row tiles, the tokens two 64-token tiles.</summary>
    public static TheoryData<string, int, int, int, int> GemmCases()
    {
        var data = new TheoryData<string, int, int, int, int>();
        foreach (var f in GemmKernelTests.Quantized)
            data.Add(f, 130, 40, 256, f == "Q8_0" ? 70 : 17);
        return data;
    }

    [Theory]
    [MemberData(nameof(GemmCases))]
    public void GemmQkv_equals_three_gemms(string format, int rows, int kvDim, int cols, int tokens) =>
        EqualsThreeLaunches("GemmQkv_" + format, "Gemm_" + format, format, rows, kvDim, cols, tokens,
            grid => Assert.Equal((uint)((rows + 127) / 128 + 2 * ((kvDim + 127) / 128)), grid));

    private static void EqualsThreeLaunches(string fused, string plain, string format, int rows, int kvDim, int cols, int tokens,
        Action<uint> checkGrid)
    {
        var rng = new Random(rows * 7919 + kvDim * 131 + cols * 31 + tokens + format.Length);
        var h = KernelHarness.Shared;
        byte[] wq = ReferenceFormats.Random(format, rows, cols, rng);
        byte[] wk = ReferenceFormats.Random(format, kvDim, cols, rng);
        byte[] wv = ReferenceFormats.Random(format, kvDim, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        using var qw = h.Upload(wq);
        using var kw = h.Upload(wk);
        using var vw = h.Upload(wv);
        using var xb = h.Upload(x);
        using var xq = WeightKernelTests.Quantized(h, xb, cols, tokens);
        using var q = h.Allocate<float>((long)rows * tokens);
        using var k = h.Allocate<float>((long)kvDim * tokens);
        using var v = h.Allocate<float>((long)kvDim * tokens);
        var shape = h.Launch(fused, qw.View, kw.View, vw.View, xb.View, xq.View, q.View, k.View, v.View, rows, kvDim, cols, tokens);
        checkGrid(shape.GridX);

        foreach (var (w, y, n, name) in new[] { (qw, q, rows, "q"), (kw, k, kvDim, "k"), (vw, v, kvDim, "v") })
        {
            using var expected = h.Allocate<float>((long)n * tokens);
            h.Launch(plain, w.View, xb.View, xq.View, expected.View, n, cols, tokens);
            float[] want = expected.GetAsArray1D(), got = y.GetAsArray1D();
            for (int i = 0; i < want.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[i]),
                    $"{fused} {name}[{i}] = {got[i]}, {plain} gives {want[i]}");
        }
    }
}
