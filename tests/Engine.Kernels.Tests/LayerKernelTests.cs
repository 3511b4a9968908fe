using Engine.Kernels.Tests.Reference;
using ILGPU;
using ILGPU.Runtime;
using Xunit;

namespace Engine.Kernels.Tests;

/// <summary>Conformance of the format-free families against float64 references, with awkward sizes (not multiples
/// of the warp or the block).</summary>
public class LayerKernelTests
{
    /// <summary>The quantize kernel writes exactly the reference's bytes: int8 values, f16-rounded scales and sums, a
    /// zero block, exact ties (x·127/max = k + 0.5 rounds to even), a row that is not a multiple of the block and a
    /// padding block.</summary>
    [Theory]
    [InlineData(64, 1)]
    [InlineData(300, 3)]
    [InlineData(4096, 2)]
    public void Quantize_writes_the_reference_bytes(int cols, int tokens)
    {
        var rng = new Random(cols * 3 + tokens);
        var h = KernelHarness.Shared;
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens);
        for (int i = 0; i < Math.Min(32, cols); i++) x[i] = 0;                            // a zero block
        if (cols >= 64) { x[32] = 127; x[33] = 2.5f; x[34] = -3.5f; x[35] = 0.5f; }      // ties to even
        using var xb = h.Upload(x);
        using var qb = h.Allocate<byte>(Engine.Kernels.Quantize.RowBytes(cols) * tokens);
        h.Launch("Quantize", xb.View, qb.View, cols, tokens);
        byte[] expected = QuantizedActivations.Quantize(x, cols), actual = qb.GetAsArray1D();
        int first = Enumerable.Range(0, expected.Length).FirstOrDefault(i => expected[i] != actual[i], -1);
        Assert.True(first < 0, $"byte {first} of {expected.Length}: {(first < 0 ? 0 : actual[first])}, expected {(first < 0 ? 0 : expected[first])} (row bytes {Engine.Kernels.Quantize.RowBytes(cols)}, pairs at {Engine.Kernels.Quantize.PairsOffset(cols)})");
    }

    [Theory]
    [InlineData(37, 1)]
    [InlineData(300, 3)]
    public void RmsNorm_matches_reference(int cols, int tokens)
    {
        var rng = new Random(cols + tokens);
        var h = KernelHarness.Shared;
        float[] x = ReferenceFormats.Gaussian(rng, cols * tokens), w = ReferenceFormats.Gaussian(rng, cols);
        const float eps = 1e-5f;
        using var xb = h.Upload(x);
        using var wb = h.Upload(w);
        using var yb = h.Allocate<float>(cols * tokens);
        using var qb = h.Allocate<byte>(Engine.Kernels.Quantize.RowBytes(cols) * tokens);
        h.Launch("RmsNorm", xb.View, wb.View, yb.View, qb.View, cols, tokens, eps);

        var expected = new double[cols * tokens];
        for (int t = 0; t < tokens; t++)
        {
            double ss = 0;
            for (int i = 0; i < cols; i++) ss += (double)x[t * cols + i] * x[t * cols + i];
            double scale = 1 / Math.Sqrt(ss / cols + eps);
            for (int i = 0; i < cols; i++) expected[t * cols + i] = x[t * cols + i] * scale * w[i];
        }
        float[] y = yb.GetAsArray1D();
        Nmse.Check("rms_norm", y, expected, 1e-10);
        // The fused quantized output is the quantize kernel's bytes for y.
        Assert.Equal(QuantizedActivations.Quantize(y, cols), qb.GetAsArray1D());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Rope_matches_reference(bool freqFactors)
    {
        var rng = new Random(freqFactors ? 1 : 2);
        var h = KernelHarness.Shared;
        int nHead = 6, nHeadKv = 2, headDim = 16, tokens = 3;
        int[] positions = [0, 17, 4000];
        const float freqBase = 500000f, freqScale = 1f;
        float[] q = ReferenceFormats.Gaussian(rng, tokens * nHead * headDim), k = ReferenceFormats.Gaussian(rng, tokens * nHeadKv * headDim);
        float[] factors = freqFactors ? Enumerable.Range(0, headDim / 2).Select(i => 1f + i * 0.5f).ToArray() : [];
        using var qb = h.Upload(q);
        using var kb = h.Upload(k);
        using var pb = h.Upload(positions);
        using var fb = h.Upload(factors);
        var factorView = freqFactors ? fb.View : fb.View.SubView(0, 0);
        h.Launch("Rope", qb.View, kb.View, pb.View, factorView, nHead, nHeadKv, headDim, tokens, freqBase, freqScale);

        double[] Rotate(float[] v, int heads)
        {
            var r = new double[v.Length];
            for (int t = 0; t < tokens; t++)
                for (int hd = 0; hd < heads; hd++)
                    for (int p = 0; p < headDim / 2; p++)
                    {
                        double theta = positions[t] * freqScale * Math.Pow(freqBase, -2.0 * p / headDim);
                        if (freqFactors) theta /= factors[p];
                        int i = (t * heads + hd) * headDim + 2 * p;
                        r[i] = v[i] * Math.Cos(theta) - v[i + 1] * Math.Sin(theta);
                        r[i + 1] = v[i] * Math.Sin(theta) + v[i + 1] * Math.Cos(theta);
                    }
            return r;
        }
        // float32 θ at position 4000 carries ~1e-4 rad of rounding (as in ggml), hence the looser limit.
        Nmse.Check("rope q", qb.GetAsArray1D(), Rotate(q, nHead), 1e-7);
        Nmse.Check("rope k", kb.GetAsArray1D(), Rotate(k, nHeadKv), 1e-7);
    }

    /// <summary>The fused rope_kv_store gives exactly what rope then kv_store give: q rotated in place, the rotated k
    /// and v in the caches at the tokens' positions (same arithmetic, so bit for bit), k's buffer untouched.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RopeKvStore_equals_rope_then_kv_store(bool freqFactors)
    {
        var rng = new Random(freqFactors ? 11 : 12);
        var h = KernelHarness.Shared;
        int nHead = 6, nHeadKv = 2, headDim = 16, tokens = 3, ctx = 4010, kvDim = nHeadKv * headDim;
        int[] positions = [5, 17, 4000];
        const float freqBase = 500000f, freqScale = 1f;
        float[] q = ReferenceFormats.Gaussian(rng, tokens * nHead * headDim), k = ReferenceFormats.Gaussian(rng, tokens * kvDim);
        float[] v = ReferenceFormats.Gaussian(rng, tokens * kvDim);
        float[] factors = freqFactors ? Enumerable.Range(0, headDim / 2).Select(i => 1f + i * 0.5f).ToArray() : [];
        using var pb = h.Upload(positions);
        using var fb = h.Upload(factors);
        var factorView = freqFactors ? fb.View : fb.View.SubView(0, 0);
        using var vb = h.Upload(v);

        using var q1 = h.Upload(q);
        using var k1 = h.Upload(k);
        using var kc1 = h.Allocate<ILGPU.Half>(ctx * kvDim);
        using var vc1 = h.Allocate<ILGPU.Half>(ctx * kvDim);
        h.Launch("Rope", q1.View, k1.View, pb.View, factorView, nHead, nHeadKv, headDim, tokens, freqBase, freqScale);
        h.Launch("KvStore", k1.View, vb.View, kc1.View, vc1.View, pb.View, kvDim, tokens);

        using var q2 = h.Upload(q);
        using var k2 = h.Upload(k);
        using var kc2 = h.Allocate<ILGPU.Half>(ctx * kvDim);
        using var vc2 = h.Allocate<ILGPU.Half>(ctx * kvDim);
        h.Launch("RopeKvStore", q2.View, k2.View, vb.View, kc2.View, vc2.View, pb.View, factorView, nHead, nHeadKv, headDim, tokens,
            freqBase, freqScale);

        Assert.Equal(q1.GetAsArray1D(), q2.GetAsArray1D());
        Assert.Equal(kc1.GetAsArray1D(), kc2.GetAsArray1D());
        Assert.Equal(vc1.GetAsArray1D(), vc2.GetAsArray1D());
        Assert.Equal(k, k2.GetAsArray1D());
        // Not vacuous: the rotated rows landed at the positions (a row of the cache is non-zero where a token was).
        Assert.Contains(kc2.GetAsArray1D().Skip(4000 * kvDim).Take(kvDim), x => (float)x != 0f);
    }

    [Fact]
    public void KvStore_writes_rows_at_positions()
    {
        var rng = new Random(5);
        var h = KernelHarness.Shared;
        int kvDim = 40, tokens = 3, ctx = 9;
        int[] positions = [2, 3, 7];
        float[] k = ReferenceFormats.Gaussian(rng, kvDim * tokens), v = ReferenceFormats.Gaussian(rng, kvDim * tokens);
        using var kb = h.Upload(k);
        using var vb = h.Upload(v);
        using var kc = h.Allocate<ILGPU.Half>(ctx * kvDim);
        using var vc = h.Allocate<ILGPU.Half>(ctx * kvDim);
        using var pb = h.Upload(positions);
        h.Launch("KvStore", kb.View, vb.View, kc.View, vc.View, pb.View, kvDim, tokens);

        var kCache = kc.GetAsArray1D().Select(x => (float)x).ToArray();
        var vCache = vc.GetAsArray1D().Select(x => (float)x).ToArray();
        var kExpected = new double[ctx * kvDim];
        var vExpected = new double[ctx * kvDim];
        for (int t = 0; t < tokens; t++)
            for (int c = 0; c < kvDim; c++)
            {
                kExpected[positions[t] * kvDim + c] = (double)(System.Half)k[t * kvDim + c];
                vExpected[positions[t] * kvDim + c] = (double)(System.Half)v[t * kvDim + c];
            }
        // ILGPU's CPU accelerator converts f32 → f16 by truncation, the GPU rounds to nearest (cvt.rn.f16.f32):
        // allow one f16 ulp, a relative 2^-10, so NMSE ≤ 2^-20 ≈ 9.5e-7. A misplaced row gives NMSE ≈ 1.
        Nmse.Check("kv_store k", kCache, kExpected, 1e-6);
        Nmse.Check("kv_store v", vCache, vExpected, 1e-6);
    }

    /// <summary>attention_quant writes what attention writes and, quantized, the quantize kernel's bytes for it
    /// (head_dim a multiple of 32: a warp's outputs are one block); attention_quant_short likewise against
    /// attention_short, with one range and with several (the merge writes the 8-bit form too).</summary>
    [Theory]
    [InlineData("Attention", 4, 2, 64, 2, 30)]
    [InlineData("Attention", 8, 2, 128, 3, 30)]
    [InlineData("Attention", 2, 1, 32, 1, 30)]
    [InlineData("AttentionShort", 8, 2, 128, 2, 60)]
    [InlineData("AttentionShort", 8, 2, 128, 1, 300)]
    public void AttentionQuant_equals_attention_then_quantize(string plain, int nHead, int nHeadKv, int headDim, int tokens, int start)
    {
        var rng = new Random(nHead * 31 + headDim);
        var h = KernelHarness.Shared;
        int kvDim = nHeadKv * headDim, ctx = start + 10, cols = nHead * headDim;
        int[] positions = Enumerable.Range(0, tokens).Select(t => start + t).ToArray();
        float scale = 1f / MathF.Sqrt(headDim);
        using var qb = h.Upload(ReferenceFormats.Gaussian(rng, tokens * cols));
        using var kc = h.Upload(ReferenceFormats.Gaussian(rng, ctx * kvDim).Select(x => (ILGPU.Half)x).ToArray());
        using var vc = h.Upload(ReferenceFormats.Gaussian(rng, ctx * kvDim).Select(x => (ILGPU.Half)x).ToArray());
        using var pb = h.Upload(positions);
        using var y1 = h.Allocate<float>(tokens * cols);
        using var y2 = h.Allocate<float>(tokens * cols);
        using var yq = h.Upload(Enumerable.Repeat((byte)0xA5, (int)Engine.Kernels.Quantize.RowBytes(cols) * tokens).ToArray());
        using var part = h.Allocate<float>(64L * nHead * (headDim + 2));
        using var sync = h.Allocate<int>(nHeadKv * tokens);
        string fused = plain.Replace("Attention", "AttentionQuant");
        h.Launch(plain, qb.View, kc.View, vc.View, pb.View, y1.View, part.View, sync.View, nHead, nHeadKv, headDim, tokens, scale);
        h.Launch(fused, qb.View, kc.View, vc.View, pb.View, y2.View, yq.View, part.View, sync.View, nHead, nHeadKv, headDim, tokens, scale);
        float[] y = y2.GetAsArray1D();
        Assert.Equal(y1.GetAsArray1D(), y);
        Assert.Equal(QuantizedActivations.Quantize(y, cols), yq.GetAsArray1D());
    }

    [Theory]
    [InlineData(4, 2, 64, 2)]   // GQA 2:1, head_dim 64 (two dims a lane)
    [InlineData(8, 2, 128, 3)]  // GQA 4:1, head_dim 128 (Llama)
    [InlineData(3, 3, 40, 1)]   // MHA, head_dim not a multiple of the warp
    [InlineData(8, 2, 128, 2, 300)] // past the 128 positions of a group's first step (the rows loaded before the wait)
    [InlineData(8, 2, 128, 1, 2100)] // one decode token deep in the context: 9 ranges, merged by the last group
    [InlineData(16, 2, 64, 1, 700)]  // eight query heads a kv head (two passes of four), 3 ranges
    [InlineData(3, 3, 40, 1, 600)]   // MHA, head_dim 40, 3 ranges
    [InlineData(4, 2, 64, 5, 400)]   // a step of 5 tokens: 7 groups a kv head and token, 2 ranges each
    [InlineData(8, 2, 128, 1, 100)]  // per-head mode, 2 ranges
    [InlineData(8, 2, 128, 2, 255)]  // two tokens of 4 and 5 ranges (256 and 257 positions)
    [InlineData(4, 2, 48, 3, 60)]    // head_dim 48: lanes past the dims, one range
    public void Attention_matches_reference(int nHead, int nHeadKv, int headDim, int tokens, int start = 37) =>
        CheckAttention("Attention", nHead, nHeadKv, headDim, tokens, start);

    /// <summary>The short kernel (groups of a query head taking ranges of whole 128-position passes, the softmax carried
    /// across passes, ranges merged by the kv head's last group) against the same float64 reference: one pass, several,
    /// several ranges, a step of several tokens whose contexts end in different passes, head_dim 48 and 64 (lanes past
    /// the dims, fewer quads a half row), MHA and GQA; the range counters end at zero.</summary>
    [Theory]
    [InlineData(8, 2, 128, 1, 37)]
    [InlineData(8, 2, 128, 1, 127)]  // exactly one pass
    [InlineData(8, 2, 128, 1, 128)]  // one position into the second pass
    [InlineData(8, 2, 128, 1, 300)]  // three passes
    [InlineData(4, 2, 64, 3, 126)]   // three tokens: 127, 128, 129 positions (one or two passes)
    [InlineData(3, 3, 48, 2, 200)]   // MHA, head_dim 48: three quads a half row, lanes 12.. hold no dims
    [InlineData(16, 2, 64, 1, 0)]    // the first position: a context of one
    [InlineData(8, 2, 128, 1, 700)]  // six ranges of one pass, merged by the kv head's last group
    [InlineData(8, 2, 128, 1, 1000)] // all eight ranges (one pass each): the merge's eight-range step full
    [InlineData(16, 2, 64, 1, 1100)] // five ranges of up to two passes (eight query heads a kv head)
    [InlineData(4, 2, 64, 2, 400)]   // two tokens: four ranges each of one pass
    [InlineData(8, 2, 128, 8, 200)]  // eight tokens: one range of two passes each, no partials
    public void AttentionShort_matches_reference(int nHead, int nHeadKv, int headDim, int tokens, int start) =>
        CheckAttention("AttentionShort", nHead, nHeadKv, headDim, tokens, start);

    /// <summary>The tiled attention of prompt steps (tensor-core mma; on the CPU device its fragments by shuffles) against
    /// the float64 reference: q and the weights are rounded to f16 (so the tolerance is f16's, not f32's), y and its
    /// 8-bit blocks as the quantize kernel writes them. A prompt from position 0 over two token tiles, the last one
    /// partial; a step in mid-context whose tokens span chunks; head_dim 64 and 96 (fewer dim tiles and k-steps); MHA
    /// and eight query heads a kv head.</summary>
    [Theory]
    [InlineData(2, 1, 128, 70, 0)]
    [InlineData(4, 2, 64, 20, 50)]
    [InlineData(2, 2, 96, 9, 3)]
    [InlineData(8, 1, 32, 3, 130)]
    public void AttentionQuantTiled_matches_reference(int nHead, int nHeadKv, int headDim, int tokens, int start)
    {
        var rng = new Random(nHead * 1000 + headDim + tokens);
        var h = KernelHarness.Shared;
        int kvDim = nHeadKv * headDim, ctx = start + tokens + 5, cols = nHead * headDim;
        int[] positions = Enumerable.Range(0, tokens).Select(t => start + t).ToArray();
        float scale = 1f / MathF.Sqrt(headDim);
        var (q, kHalf, vHalf) = RandomAttention(rng, tokens * cols, ctx * kvDim);
        using var qb = h.Upload(q);
        using var kc = h.Upload(kHalf);
        using var vc = h.Upload(vHalf);
        using var pb = h.Upload(positions);
        using var yb = h.Upload(Enumerable.Repeat(float.NaN, tokens * cols).ToArray());
        using var yq = h.Upload(Enumerable.Repeat((byte)0xA5, (int)Engine.Kernels.Quantize.RowBytes(cols) * tokens).ToArray());
        using var part = h.Allocate<float>(64L * nHead * (headDim + 2));
        using var sync = h.Allocate<int>(nHeadKv * tokens);
        h.Launch("AttentionQuantTiled", qb.View, kc.View, vc.View, pb.View, yb.View, yq.View, part.View, sync.View, nHead, nHeadKv,
            headDim, tokens, scale);
        float[] y = yb.GetAsArray1D();
        Nmse.Check("AttentionQuantTiled", y, ReferenceAttention(q, kHalf, vHalf, positions, nHead, nHeadKv, headDim, scale), 2e-6);
        Assert.Equal(QuantizedActivations.Quantize(y, cols), yq.GetAsArray1D());
    }

    /// <summary>Gaussian q (f32) and K, V caches (f16) of the given element counts.</summary>
    private static (float[] Q, ILGPU.Half[] K, ILGPU.Half[] V) RandomAttention(Random rng, int qElements, int cacheElements) =>
        (ReferenceFormats.Gaussian(rng, qElements),
         ReferenceFormats.Gaussian(rng, cacheElements).Select(x => (ILGPU.Half)x).ToArray(),
         ReferenceFormats.Gaussian(rng, cacheElements).Select(x => (ILGPU.Half)x).ToArray());

    private static double[] ReferenceAttention(float[] q, ILGPU.Half[] kHalf, ILGPU.Half[] vHalf, int[] positions, int nHead, int nHeadKv,
        int headDim, float scale)
    {
        int tokens = positions.Length, kvDim = nHeadKv * headDim;
        var expected = new double[tokens * nHead * headDim];
        for (int t = 0; t < tokens; t++)
            for (int hd = 0; hd < nHead; hd++)
            {
                int kvh = hd / (nHead / nHeadKv), n = positions[t] + 1;
                var s = new double[n];
                for (int p = 0; p < n; p++)
                {
                    double dot = 0;
                    for (int d = 0; d < headDim; d++)
                        dot += (double)q[(t * nHead + hd) * headDim + d] * (float)kHalf[p * kvDim + kvh * headDim + d];
                    s[p] = dot * scale;
                }
                double max = s.Max(), sum = s.Sum(v => Math.Exp(v - max));
                for (int d = 0; d < headDim; d++)
                {
                    double acc = 0;
                    for (int p = 0; p < n; p++) acc += Math.Exp(s[p] - max) / sum * (float)vHalf[p * kvDim + kvh * headDim + d];
                    expected[(t * nHead + hd) * headDim + d] = acc;
                }
            }
        return expected;
    }

    private static void CheckAttention(string kernel, int nHead, int nHeadKv, int headDim, int tokens, int start)
    {
        var rng = new Random(nHead * 100 + headDim);
        var h = KernelHarness.Shared;
        int kvDim = nHeadKv * headDim, ctx = start + 8;
        int[] positions = Enumerable.Range(0, tokens).Select(t => start + t).ToArray(); // a prompt tail: causal over start + 1.. positions
        float scale = 1f / MathF.Sqrt(headDim);
        var (q, kHalf, vHalf) = RandomAttention(rng, tokens * nHead * headDim, ctx * kvDim);
        using var qb = h.Upload(q);
        using var kc = h.Upload(kHalf);
        using var vc = h.Upload(vHalf);
        using var pb = h.Upload(positions);
        using var yb = h.Allocate<float>(tokens * nHead * headDim);
        using var part = h.Upload(Enumerable.Repeat(float.NaN, 64 * nHead * (headDim + 2)).ToArray());
        using var sync = h.Allocate<int>(nHeadKv * tokens);
        var shape = h.Launch(kernel, qb.View, kc.View, vc.View, pb.View, yb.View, part.View, sync.View, nHead, nHeadKv, headDim, tokens, scale);
        Assert.All(sync.GetAsArray1D(), c => Assert.Equal(0, c));   // every range counter back at zero
        // The spec's grid gives at most MaxRanges range slots a kv head (or query head) and token: the merge reads a
        // range's (max, sum) a lane each and keeps MaxRanges weights a head.
        Assert.InRange((int)shape.GridX / (kernel == "Attention" ? nHeadKv : nHead), 1, Engine.Kernels.Attention.MaxRanges);

        var expected = ReferenceAttention(q, kHalf, vHalf, positions, nHead, nHeadKv, headDim, scale);
        Nmse.Check(kernel, yb.GetAsArray1D(), expected, 1e-9);
    }

    [Fact]
    public void Add_and_SwiGlu_match_reference()
    {
        var rng = new Random(9);
        var h = KernelHarness.Shared;
        int n = 1000; // not a multiple of the 256-thread block
        float[] a = ReferenceFormats.Gaussian(rng, n), b = ReferenceFormats.Gaussian(rng, n);
        using var ab = h.Upload(a);
        using var bb = h.Upload(b);
        using var yb = h.Allocate<float>(n);
        h.Launch("SwiGlu", ab.View, bb.View, yb.View, n);
        Nmse.Check("swiglu", yb.GetAsArray1D(), a.Select((g, i) => g / (1 + Math.Exp(-g)) * b[i]).ToArray(), 1e-12);
        h.Launch("Add", ab.View, bb.View, n);
        Nmse.Check("add", ab.GetAsArray1D(), a.Select((x, i) => (double)x + b[i]).ToArray(), 1e-14);
    }

    /// <summary>argmax: the last row's best id into tokens[0] (ties to the lowest id, -∞ and NaN elements), the next
    /// position into positions[0]; rows whose start is not 16-byte aligned (odd vocabularies), smaller and larger
    /// than a group's quads, the lane count of the GPU launch's group (1024 threads: the CPU device runs 256, the
    /// body adapts).</summary>
    [Theory]
    [InlineData(1, 1, 7)]
    [InlineData(3, 1, 0)]
    [InlineData(4099, 3, 4098)]
    [InlineData(128256, 1, 77777)]
    [InlineData(32001, 2, 5)]
    public void ArgMax_picks_the_last_rows_lowest_best_id_and_advances_the_position(int vocab, int tokens, int best)
    {
        best = Math.Min(best, vocab - 1);
        var rng = new Random(vocab + tokens);
        var h = KernelHarness.Shared;
        float[] logits = ReferenceFormats.Gaussian(rng, vocab * tokens);
        long row = (long)(tokens - 1) * vocab;
        for (int t = 0; t < tokens - 1; t++) logits[(long)t * vocab + (best + 1) % vocab] = 1e9f;   // earlier rows do not count
        if (vocab > 2) logits[row + vocab - 1] = float.NegativeInfinity;
        if (best > 0) logits[row + best - 1] = float.NaN;                     // a NaN never wins
        logits[row + best] = 50f;
        if (best + 9 < vocab) logits[row + best + 9] = 50f;                  // a tie after it
        using var lb = h.Upload(logits);
        using var tb = h.Upload(new int[Math.Max(tokens, 1)]);
        using var pb = h.Upload(Enumerable.Range(40, tokens).ToArray());
        h.Launch("ArgMax", lb.View, tb.View, pb.View, vocab, tokens);
        Assert.Equal(best, tb.GetAsArray1D()[0]);
        Assert.Equal(40 + tokens, pb.GetAsArray1D()[0]);
        // The host sampler's answer for the same row (no NaN at id 0, so the two agree).
        Assert.Equal(best, Engine.Runtime.Sampling.Sampler.ArgMax(logits.AsSpan((int)row, vocab)));
    }

    /// <summary>A row of -∞ gives id 0 (every element ties), a row of NaNs id 0 (none is ever taken).</summary>
    [Fact]
    public void ArgMax_of_a_row_without_a_number_above_minus_infinity_is_zero()
    {
        var h = KernelHarness.Shared;
        foreach (float v in new[] { float.NegativeInfinity, float.NaN })
        {
            using var lb = h.Upload(Enumerable.Repeat(v, 1000).ToArray());
            using var tb = h.Upload(new[] { 5 });
            using var pb = h.Upload(new[] { 9 });
            h.Launch("ArgMax", lb.View, tb.View, pb.View, 1000, 1);
            Assert.Equal(0, tb.GetAsArray1D()[0]);
            Assert.Equal(10, pb.GetAsArray1D()[0]);
        }
    }
}
