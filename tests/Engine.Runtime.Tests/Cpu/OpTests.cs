using Engine.Runtime.Cpu;
using Xunit;

namespace Engine.Runtime.Tests.Cpu;

/// <summary>RMSNorm, RoPE, attention, SwiGLU and add against float64 references, on awkward sizes.</summary>
public sealed unsafe class OpTests
{
    [Theory]
    [InlineData(1, 7)]
    [InlineData(3, 64)]
    [InlineData(5, 259)]
    public void RmsNorm_matches_reference(int tokens, int dim)
    {
        float[] x = Reference.RandomFloats(tokens * dim, 1, 3), w = Reference.RandomFloats(dim, 2), y = new float[tokens * dim];
        const float eps = 1e-5f;
        var expected = new double[tokens * dim];
        for (int b = 0; b < tokens; b++)
        {
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += (double)x[b * dim + i] * x[b * dim + i];
            double scale = 1 / Math.Sqrt(ss / dim + eps);
            for (int i = 0; i < dim; i++) expected[b * dim + i] = x[b * dim + i] * scale * w[i];
        }
        fixed (float* px = x, pw = w, py = y) RmsNorm.Apply(px, pw, py, tokens, dim, eps);
        Assert.True(Reference.Nmse(y, expected) < 1e-12);
    }

    [Theory]
    [InlineData(8, 8, false)]
    [InlineData(6, 4, false)]     // n_dims < head_dim: the tail passes through
    [InlineData(128, 128, true)]  // Llama 3.1 frequency factors
    public void Rope_rotates_adjacent_pairs(int headDim, int ropeDims, bool freqFactors)
    {
        int heads = 3, tokens = 4, start = 90;
        const float freqBase = 10000;
        float[] ff = freqFactors ? Enumerable.Range(0, ropeDims / 2).Select(i => 1f + i % 5).ToArray() : [];
        float[] x = Reference.RandomFloats(tokens * heads * headDim, 5);
        var expected = new double[x.Length];
        for (int b = 0; b < tokens; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < headDim; i += 2)
                {
                    int at = (b * heads + h) * headDim + i;
                    if (i >= ropeDims) { expected[at] = x[at]; expected[at + 1] = x[at + 1]; continue; }
                    double theta = (start + b) * Math.Pow(freqBase, -(double)i / ropeDims) / (freqFactors ? ff[i / 2] : 1);
                    expected[at] = x[at] * Math.Cos(theta) - x[at + 1] * Math.Sin(theta);
                    expected[at + 1] = x[at] * Math.Sin(theta) + x[at + 1] * Math.Cos(theta);
                }
        using var rope = new Rope(start + tokens, ropeDims, freqBase, ff);
        fixed (float* px = x) rope.Apply(px, tokens, heads, headDim, start);
        double nmse = Reference.Nmse(x, expected);
        Assert.True(nmse < 1e-8, $"NMSE {nmse:E2}");
    }

    [Theory]
    [InlineData(1, 0, 4, 4, 8, 1)]       // first token, MHA
    [InlineData(5, 7, 6, 2, 12, 3)]      // a batch after 7 cached positions, GQA 3:1, 3 threads
    [InlineData(1, 40, 8, 1, 64, 2)]     // decode, MQA
    [InlineData(3, 300, 32, 8, 64, 2)]   // Llama 3 8B's head layout (GQA 4:1) over a longer cache
    public void Attention_over_the_f16_cache_is_causal_softmax_of_the_rounded_values(int tokens, int start, int heads,
        int kvHeads, int headDim, int threads)
    {
        int ctx = start + tokens, kvDim = kvHeads * headDim;
        float[] q = Reference.RandomFloats(tokens * heads * headDim, 1, 2), o = new float[q.Length];
        // The cache holds f16 values; the float64 reference attends over exactly those (widened) values.
        Half[] k = [.. Reference.RandomFloats(ctx * kvDim, 2, 2).Select(x => (Half)x)];
        Half[] v = [.. Reference.RandomFloats(ctx * kvDim, 3).Select(x => (Half)x)];
        var expected = new double[q.Length];
        for (int b = 0; b < tokens; b++)
            for (int h = 0; h < heads; h++)
            {
                int kvh = h / (heads / kvHeads), last = start + b;
                var s = new double[last + 1];
                for (int t = 0; t <= last; t++)
                {
                    for (int i = 0; i < headDim; i++) s[t] += (double)q[(b * heads + h) * headDim + i] * (double)k[t * kvDim + kvh * headDim + i];
                    s[t] /= Math.Sqrt(headDim);
                }
                double max = s.Max(), sum = s.Sum(z => Math.Exp(z - max));
                for (int t = 0; t <= last; t++)
                    for (int i = 0; i < headDim; i++)
                        expected[(b * heads + h) * headDim + i] += Math.Exp(s[t] - max) / sum * (double)v[t * kvDim + kvh * headDim + i];
            }
        using var pool = new WorkerPool(threads, minParallelWork: 0);
        using var attention = new Attention(threads, ctx, heads, kvHeads, headDim);
        fixed (float* pq = q, po = o)
        fixed (Half* pk = k, pv = v)
            attention.Run(pool, pq, pk, pv, po, tokens, start, 1f / MathF.Sqrt(headDim));
        double nmse = Reference.Nmse(o, expected);
        Assert.True(nmse < 1e-10, $"NMSE {nmse:E2}");
    }

    [Fact]
    public void KvStore_rounds_like_a_Half_cast()
    {
        // Random values over f16's whole range (subnormals to overflow), exact ties between two f16 values (round to
        // even), and the special values: the vectorised store must give the cast's bits, which the CUDA store shares.
        var rng = new Random(11);
        var x = new List<float>();
        for (int i = 0; i < 4000; i++) x.Add((float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-30, 18))));
        for (int i = 0; i < 1000; i++)
        {
            ushort bits = (ushort)rng.Next(0, 0x7C00);   // a finite f16; halfway to the next one above it
            float lo = (float)BitConverter.UInt16BitsToHalf(bits), hi = (float)BitConverter.UInt16BitsToHalf((ushort)(bits + 1));
            x.Add((lo + hi) / 2);
            x.Add(-(lo + hi) / 2);
        }
        x.AddRange([0f, -0f, 65504f, 65520f, 65519.99f, -70000f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1e-10f,
            float.PositiveInfinity, float.NegativeInfinity, float.NaN, float.Epsilon]);
        float[] values = [.. x];
        var k = new Half[values.Length];
        var v = new Half[values.Length];
        fixed (float* pk = values)
        fixed (Half* ck = k, cv = v)
            KvStore.Write(pk, pk, ck, cv, values.Length);
        for (int i = 0; i < values.Length; i++)
        {
            ushort want = BitConverter.HalfToUInt16Bits((Half)values[i]);
            Assert.True(want == BitConverter.HalfToUInt16Bits(k[i]) || (Half.IsNaN(k[i]) && float.IsNaN(values[i])), $"{values[i]:R}: {BitConverter.HalfToUInt16Bits(k[i]):X4}, cast {want:X4}");
            Assert.Equal(BitConverter.HalfToUInt16Bits(k[i]), BitConverter.HalfToUInt16Bits(v[i]));
        }
    }

    [Fact]
    public void KvStore_widens_every_f16_value_exactly()
    {
        // All 65536 bit patterns (zeros, subnormals, normals, infinities, NaNs), once in one call (the widest vector
        // path) and once in 13-value calls (the 8-wide path, then the scalar tail).
        var halves = new Half[65536];
        for (int i = 0; i < halves.Length; i++) halves[i] = BitConverter.UInt16BitsToHalf((ushort)i);
        var whole = new float[halves.Length];
        var pieces = new float[halves.Length];
        fixed (Half* h = halves)
        fixed (float* w = whole, p = pieces)
        {
            KvStore.Widen(h, w, halves.Length);
            for (int i = 0; i < halves.Length; i += 13) KvStore.Widen(h + i, p + i, Math.Min(13, halves.Length - i));
        }
        for (int i = 0; i < halves.Length; i++)
        {
            float want = (float)halves[i];
            foreach (float got in (float[])[whole[i], pieces[i]])
                Assert.True(BitConverter.SingleToUInt32Bits(got) == BitConverter.SingleToUInt32Bits(want) || (float.IsNaN(got) && float.IsNaN(want)),
                    $"f16 {i:X4}: {got:R}, cast {want:R}");
        }
    }

    [Fact]
    public void SwiGlu_and_Add_match_reference()
    {
        int n = 37;
        float[] g = Reference.RandomFloats(n, 1, 6), u = Reference.RandomFloats(n, 2), a = Reference.RandomFloats(n, 3);
        var swiglu = g.Select((x, i) => x / (1 + Math.Exp(-(double)x)) * u[i]).ToArray();
        var sum = a.Select((x, i) => (double)x + u[i]).ToArray();
        fixed (float* pg = g, pu = u, pa = a)
        {
            SwiGlu.Apply(pg, pu, pg, n);
            Add.InPlace(pa, pu, n);
        }
        Assert.True(Reference.Nmse(g, swiglu) < 1e-12);
        Assert.True(Reference.Nmse(a, sum) < 1e-14);
    }

    [Fact]
    public void WorkerPool_runs_every_share_once_per_run()
    {
        using var pool = new WorkerPool(3, minParallelWork: 0);
        var work = new CountingWork();
        for (int run = 0; run < 1000; run++) pool.Run(work);
        Assert.Equal([1000, 1000, 1000], work.Calls);
    }

    private sealed class CountingWork : IParallelWork
    {
        public readonly int[] Calls = new int[3];
        public void Execute(int thread, int threadCount) => Calls[thread]++;
    }
}
