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
            // One int8 lane unit a thread (4096 columns at 128 threads): the weights loaded before the PDL wait.
            if (be > 1) data.Add(f, 9, 4, 4096, 5);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(GemvCases))]
    public void GemvQkv_equals_three_gemvs(string format, int rows, int kvDim, int cols, int tokens) =>
        EqualsThreeLaunches("GemvQkv_", "Gemv_", format, format, rows, kvDim, cols, tokens,
            grid => Assert.Equal((uint)((rows + 3) / 4 + 2 * ((kvDim + 3) / 4)), grid));

    /// <summary>The format pairs of the spec (q and k in the first format, v in the second).</summary>
    public static TheoryData<string, string, int, int, int> PairCases() => new()
    {
        { "Q4_K", "Q6_K", 33, 512, 1 }, { "Q4_K", "Q6_K", 16, 512, 6 }, { "Q5_K", "Q6_K", 33, 512, 1 },
        { "Q4_K", "Q5_K", 16, 512, 6 }, { "Q4_K", "Q6_K", 9, 4096, 5 },
    };

    [Theory]
    [MemberData(nameof(PairCases))]
    public void GemvQkv_of_a_format_pair_equals_three_gemvs(string qk, string v, int rows, int cols, int tokens) =>
        EqualsThreeLaunches("GemvQkv_", "Gemv_", qk, v, rows, 6, cols, tokens,
            grid => Assert.Equal((uint)((rows + 3) / 4 + 2 * ((6 + 3) / 4)), grid));

    [Theory]
    [InlineData("Q4_K", "Q6_K")]
    [InlineData("Q5_K", "Q6_K")]
    [InlineData("Q4_K", "Q5_K")]
    public void GemmQkv_of_a_format_pair_equals_three_gemms(string qk, string v) =>
        EqualsThreeLaunches("GemmQkv_", "Gemm_", qk, v, 130, 40, 256, 17,
            grid => Assert.Equal((uint)(2 + 2), grid));

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
        EqualsThreeLaunches("GemmQkv_", "Gemm_", format, format, rows, kvDim, cols, tokens,
            grid => Assert.Equal((uint)((rows + 127) / 128 + 2 * ((kvDim + 127) / 128)), grid));

    /// <summary>Launches <paramref name="fusedPrefix"/> for q and k in <paramref name="format"/> and v in
    /// <paramref name="vFormat"/> (the pair's entry, e.g. GemvQkv_Q4_K_Q6_K, where they differ) and compares each
    /// output with <paramref name="plainPrefix"/> of that matrix's format.</summary>
    private static void EqualsThreeLaunches(string fusedPrefix, string plainPrefix, string format, string vFormat, int rows, int kvDim,
        int cols, int tokens, Action<uint> checkGrid)
    {
        string fused = fusedPrefix + format + (vFormat == format ? "" : "_" + vFormat);
        var rng = new Random(rows * 7919 + kvDim * 131 + cols * 31 + tokens + format.Length + 7 * vFormat[1]);
        var h = KernelHarness.Shared;
        byte[] wq = ReferenceFormats.Random(format, rows, cols, rng);
        byte[] wk = ReferenceFormats.Random(format, kvDim, cols, rng);
        byte[] wv = ReferenceFormats.Random(vFormat, kvDim, cols, rng);
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        using var qw = h.Upload(wq);
        using var kw = h.Upload(wk);
        using var vw = h.Upload(wv);
        using var xb = h.Upload(x);
        using var xq = WeightKernelTests.Quantized(h, xb, cols, tokens);
        using var q = h.Allocate<float>((long)rows * tokens);
        using var k = h.Allocate<float>((long)kvDim * tokens);
        using var v = h.Allocate<float>((long)kvDim * tokens);
        using var part = h.Allocate<float>(1);
        using var sync = h.Allocate<int>(1);
        var shape = h.Launch(fused, qw.View, kw.View, vw.View, xb.View, xq.View, q.View, k.View, v.View, part.View, sync.View, rows, kvDim, cols, tokens);
        checkGrid(shape.GridX);

        foreach (var (w, y, n, name, f) in new[] { (qw, q, rows, "q", format), (kw, k, kvDim, "k", format), (vw, v, kvDim, "v", vFormat) })
        {
            string plain = plainPrefix + f;
            using var expected = h.Allocate<float>((long)n * tokens);
            h.Launch(plain, w.View, xb.View, xq.View, expected.View, n, cols, tokens);
            float[] want = expected.GetAsArray1D(), got = y.GetAsArray1D();
            for (int i = 0; i < want.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[i]),
                    $"{fused} {name}[{i}] = {got[i]}, {plain} gives {want[i]}");
        }
    }
}
