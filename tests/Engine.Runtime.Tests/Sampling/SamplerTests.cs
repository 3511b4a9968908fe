using Engine.Runtime.Sampling;
using Xunit;

namespace Engine.Runtime.Tests.Sampling;

public sealed class SamplerTests
{
    private static float[] Logits(params float[] v) => v;

    [Fact]
    public void Greedy_takes_the_argmax_and_the_lowest_id_on_ties()
    {
        var s = new Sampler(5, new SamplerSettings { Temperature = 0 });
        Assert.Equal(1, s.Sample(Logits(0, 3, 1, 3, 2), []));
    }

    /// <summary>The vectorized argmax answers as the scalar loop: lengths around the vector width and its multiples,
    /// ties (the lowest id), the maximum in the tail, ±0, infinities and NaNs (the scalar loop's answer).</summary>
    [Fact]
    public void Vectorized_argmax_answers_as_the_scalar_loop()
    {
        var rng = new Random(5);
        foreach (int n in new[] { 1, 7, 8, 31, 32, 33, 64, 100, 1000, 128256 })
            for (int trial = 0; trial < 12; trial++)
            {
                var l = new float[n];
                for (int i = 0; i < n; i++) l[i] = trial % 3 == 0 ? rng.Next(4) : (float)(rng.NextDouble() * 20 - 10);
                if (trial == 4) l[n - 1] = 1e9f;                               // the maximum in the tail
                if (trial == 5) { Array.Fill(l, -0f); l[n / 2] = 0f; }         // zeros of both signs tie
                if (trial == 6) l[rng.Next(n)] = float.NaN;
                if (trial == 7) l[0] = float.NaN;
                if (trial == 8) l[rng.Next(n)] = float.PositiveInfinity;
                if (trial == 9) Array.Fill(l, float.NegativeInfinity);
                if (trial == 10 && n > 1) { l[n - 1] = 50; l[n / 2] = 50; }     // tie: the lower id
                Assert.Equal(Sampler.ArgMaxScalar(l), Sampler.ArgMax(l));
            }
    }

    /// <summary>top-k keeps exactly the k best (ties at the boundary to the lower id) of a vocabulary full of ties,
    /// whatever the order the heap meets them in (the selection skips eight logits at a time that cannot enter).</summary>
    [Fact]
    public void Top_k_keeps_the_k_best_with_ties_to_the_lower_id()
    {
        var rng = new Random(11);
        foreach (int vocab in new[] { 45, 1003, 5000 })
        {
            var logits = new float[vocab];
            for (int i = 0; i < vocab; i++) logits[i] = rng.Next(50);
            logits[vocab - 1] = 60;   // the best in the scalar tail
            const int K = 40;
            var want = Enumerable.Range(0, vocab).OrderByDescending(i => logits[i]).ThenBy(i => i).Take(K).ToHashSet();
            var sampler = new Sampler(vocab, new SamplerSettings { Temperature = 1000, TopK = K, TopP = 1, MinP = 0, Seed = 3 });
            var seen = new HashSet<int>();
            for (int d = 0; d < 4000; d++)
            {
                int t = sampler.Sample(logits, []);
                Assert.Contains(t, want);
                seen.Add(t);
            }
            Assert.Equal(want.Count, seen.Count);
        }
    }

    [Fact]
    public void Top_k_1_is_greedy_at_any_temperature()
    {
        var s = new Sampler(6, new SamplerSettings { Temperature = 5, TopK = 1, TopP = 1, MinP = 0, Seed = 9 });
        for (int i = 0; i < 50; i++) Assert.Equal(4, s.Sample(Logits(1, 2, 3, 4, 5, -1), []));
    }

    [Fact]
    public void Same_seed_gives_the_same_draws_and_another_seed_differs()
    {
        var logits = Enumerable.Range(0, 100).Select(i => (float)Math.Sin(i)).ToArray();
        int[] Draws(ulong seed)
        {
            var s = new Sampler(100, new SamplerSettings { Temperature = 1.5f, TopK = 0, TopP = 1, MinP = 0, Seed = seed });
            return Enumerable.Range(0, 64).Select(_ => s.Sample(logits, [])).ToArray();
        }
        Assert.Equal(Draws(42), Draws(42));
        Assert.NotEqual(Draws(42), Draws(43));
    }

    [Fact]
    public void Draws_follow_the_softmax()
    {
        // p = softmax(ln 1, ln 2, ln 3, ln 4) = 0.1, 0.2, 0.3, 0.4
        var logits = new[] { 1f, 2f, 3f, 4f }.Select(x => MathF.Log(x)).ToArray();
        var s = new Sampler(4, new SamplerSettings { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 1 });
        var counts = new int[4];
        for (int i = 0; i < 20000; i++) counts[s.Sample(logits, [])]++;
        for (int i = 0; i < 4; i++) Assert.InRange(counts[i] / 20000.0, 0.1 * (i + 1) - 0.015, 0.1 * (i + 1) + 0.015);
    }

    [Fact]
    public void Top_p_and_min_p_cut_the_tail()
    {
        // p ≈ 0.5, 0.3, 0.15, 0.05: top-p 0.7 keeps two, min-p 0.2 keeps p ≥ 0.1 (three).
        var logits = new[] { 0.5f, 0.3f, 0.15f, 0.05f }.Select(x => MathF.Log(x)).ToArray();
        var topP = new Sampler(4, new SamplerSettings { Temperature = 1, TopK = 0, TopP = 0.7f, MinP = 0, Seed = 2 });
        var minP = new Sampler(4, new SamplerSettings { Temperature = 1, TopK = 0, TopP = 1, MinP = 0.2f, Seed = 2 });
        var seenP = new HashSet<int>();
        var seenM = new HashSet<int>();
        for (int i = 0; i < 2000; i++) { seenP.Add(topP.Sample(logits, [])); seenM.Add(minP.Sample(logits, [])); }
        Assert.Equal([0, 1], seenP.Order());
        Assert.Equal([0, 1, 2], seenM.Order());
    }

    [Fact]
    public void Repeat_penalty_divides_positive_and_multiplies_negative_logits_of_recent_tokens()
    {
        // Token 0 (2.0) repeated → 1.0 < token 1 (1.5): greedy moves to 1. Token 2 (-1) → -2. Window 2 forgets older ones.
        var s = new Sampler(4, new SamplerSettings { Temperature = 0, RepeatPenalty = 2, RepeatLastN = 2 });
        Assert.Equal(1, s.Sample(Logits(2f, 1.5f, -1f, 0f), [0, 0]));
        Assert.Equal(0, s.Sample(Logits(2f, 1.5f, -1f, 0f), [0, 3, 3]));   // 0 is outside the window of 2
        Assert.Equal(3, s.Sample(Logits(-1f, -1f, -0.6f, -0.5f), [2, 2]));  // -0.6 → -1.2 loses to -0.5
    }

    [Fact]
    public void Sampling_allocates_nothing()
    {
        var logits = Enumerable.Range(0, 1000).Select(i => (float)Math.Cos(i * 0.37)).ToArray();
        int[] history = [1, 2, 3, 4, 5];
        var s = new Sampler(1000, new SamplerSettings { Temperature = 0.8f, TopK = 0, TopP = 0.9f, MinP = 0.05f, RepeatPenalty = 1.1f, Seed = 3 });
        s.Sample(logits, history);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) s.Sample(logits, history);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
