using Engine.Plans.Gguf;
using Engine.Plans.Model;
using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;
using Engine.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Runtime.Tests.EndToEnd;

/// <summary>The CPU backend against llama.cpp's goldens (models/MODELS.md), each model run through its plan (cpu-only
/// profile, <see cref="TestPlans"/>): exact greedy tokens where the weights are F32/F16, and teacher-forced logits
/// for every model.</summary>
public sealed class CpuModelVsLlamaCppTests(ITestOutputHelper output)
{
    public static TheoryData<string> FloatModels => new() { "stories260K", "stories260K-pad256-F32", "llama-2-tiny-random", "stories260K-pad256-F16" };

    public static TheoryData<string> AllModels => new()
    {
        "stories260K", "stories260K-pad256-F32", "llama-2-tiny-random", "stories260K-pad256-F16", "stories260K-Q8_0",
        "stories260K-Q4_0", "stories260K-pad256-Q8_0", "stories260K-pad256-Q4_0", "stories260K-pad256-Q4_K_M",
        "stories260K-pad256-Q5_K_M", "stories260K-pad256-Q6_K",
    };

    /// <summary>The backend of a cpu-only plan of <paramref name="model"/> with passes of <paramref name="maxBatch"/> tokens.</summary>
    internal static LoadedPlan Load(string model, int threads = 2, int maxBatch = 64) => TestPlans.Load(model, threads: threads, batch: maxBatch);

    [Theory]
    [MemberData(nameof(FloatModels))]
    public void Greedy_32_tokens_match_llama_cpp_with_f32_kv_cache(string model)
    {
        var reference = LlamaCppReference.Load(model + ".ref-kvf32.txt");
        using var plan = TestPlans.Load(model);
        var session = plan.OpenSession(new SamplerSettings { Temperature = 0 });
        session.Feed(reference.PromptTokens);
        var generated = new List<int>();
        session.Generate(32, _ => false, (token, _) => generated.Add(token));
        Assert.Equal(reference.GenTokens, generated);
    }

    /// <summary>Generation through the plan's argmax op (<see cref="IGreedyDecoder"/>: the step's token and position
    /// fed back in the plan's inputs, no logits out) gives llama.cpp's tokens and leaves the session where the host
    /// sampler's loop does: the same history and position, with a stop token and with -n.</summary>
    [Theory]
    [MemberData(nameof(FloatModels))]
    public void Greedy_decode_through_the_plans_argmax_matches_llama_cpp_and_the_host_sampler(string model)
    {
        var reference = LlamaCppReference.Load(model + ".ref-kvf32.txt");
        using var plan = TestPlans.Load(model);
        var decoder = Assert.IsAssignableFrom<IGreedyDecoder>(plan.Model);
        Assert.True(decoder.CanDecodeGreedy);
        // A token outside the vocabulary, or steps past the context, are refused before anything runs.
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.DecodeGreedy(plan.Model.Config.VocabSize, 0, 1, _ => true));
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.DecodeGreedy(1, plan.Model.MaxContext - 2, 3, _ => true));
        (List<int> Tokens, int[] History, int Produced) Run(bool withLogits, int max, Func<int, bool> isEnd)
        {
            var session = plan.OpenSession(new SamplerSettings { Temperature = 0 });
            session.Feed(reference.PromptTokens);
            var generated = new List<int>();
            int produced = session.Generate(max, isEnd, (token, logits) =>
            {
                Assert.Equal(withLogits, !logits.IsEmpty);
                generated.Add(token);
            }, withLogits: withLogits);
            Assert.Equal(reference.PromptTokens.Length + produced - 1, session.Position);
            return (generated, session.History.ToArray(), produced);
        }
        var device = Run(false, 32, _ => false);
        Assert.Equal(reference.GenTokens, device.Tokens);
        Assert.Equal([.. reference.PromptTokens, .. reference.GenTokens[..31]], device.History);
        int stop = reference.GenTokens[12];
        foreach (var (max, isEnd) in new (int, Func<int, bool>)[] { (32, t => t == stop), (7, _ => false), (1, _ => false) })
        {
            var host = Run(true, max, isEnd);
            var fast = Run(false, max, isEnd);
            Assert.Equal(host.Tokens, fast.Tokens);
            Assert.Equal(host.History, fast.History);
            Assert.Equal(host.Produced, fast.Produced);
        }
    }

    [Theory]
    [MemberData(nameof(AllModels))]
    public void Teacher_forced_logits_match_llama_cpp(string model)
    {
        var reference = LlamaCppReference.Load(model + ".ref.txt");
        float[] expected = LlamaCppReference.Logits(model + ".ref.logits.f32");
        using var plan = TestPlans.Load(model);
        var cpu = plan.Model;
        int vocab = cpu.Config.VocabSize, steps = reference.GenTokens.Length;
        Assert.Equal((long)steps * vocab, expected.Length);

        var (nmse, agree) = LlamaCppReference.Compare(reference.TeacherForcedLogits(cpu), expected, vocab, steps);
        double top1 = (double)agree / steps;
        output.WriteLine($"{model}: NMSE {nmse:E2}, top-1 {agree}/{steps}");
        Assert.True(nmse <= 1e-3, $"{model}: NMSE {nmse:E3} > 1e-3");
        Assert.True(top1 >= 0.97, $"{model}: top-1 agreement {agree}/{steps} < 97%");
    }

    [Fact]
    public void Batched_prompt_and_one_token_passes_give_the_same_logits()
    {
        // Passes of 1, 3 and 64 tokens over the same sequence: the batched GEMM and the GEMV must agree.
        var reference = LlamaCppReference.Load("stories260K-pad256-Q4_K_M.ref.txt");
        int[] sequence = [.. reference.PromptTokens, .. reference.GenTokens[..10]];
        float[] Run(int batch)
        {
            using var plan = Load("stories260K-pad256-Q4_K_M", threads: 3, maxBatch: batch);
            var all = new float[sequence.Length * plan.Model.Config.VocabSize];
            plan.Model.Forward(sequence, 0, all);
            return all;
        }
        float[] one = Run(1), three = Run(3), big = Run(64);
        for (int i = 0; i < one.Length; i++)
        {
            Assert.Equal(one[i], three[i], 1e-4f);
            Assert.Equal(one[i], big[i], 1e-4f);
        }
    }

    [Fact]
    public void Decoding_a_token_allocates_nothing()
    {
        using var plan = Load("stories260K-pad256-Q4_K_M");
        var session = new Session(plan.Model, new SamplerSettings { Temperature = 0.8f, TopK = 40, TopP = 0.9f, MinP = 0.05f, RepeatPenalty = 1.1f, Seed = 7 });
        session.Feed([1, 403, 407]);
        session.Generate(4, _ => false, (_, _) => { });   // warm-up (JIT)
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 16; i++) session.Feed(session.Sample());
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
