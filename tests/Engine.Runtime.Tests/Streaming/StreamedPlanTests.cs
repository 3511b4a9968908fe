using Engine.Plans;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;
using Engine.Runtime.Streaming;
using Engine.Runtime.Tests.EndToEnd;
using Engine.Tests;
using Xunit;

namespace Engine.Runtime.Tests.Streaming;

/// <summary>Plans of the shared models made with budgets so small that most layers stream (tier B from the pinned
/// arena, tier C from the GGUF through staging), run on the CPU backend's streaming engine: tokens and logits must be
/// those of the resident cpu-only plan, bit for bit (the same kernels over the same bytes, only at other addresses).
/// GPU-profile plans (a test profile with small VRAM: the cpu planner makes no tier B, because a RAM → RAM copy buys
/// nothing there) run as `ntrun --backend cpu` runs them (<see cref="PlanRunOptions.Backend"/>). Each case
/// asserts the tiers its plan holds, so none can pass by accident with everything resident.</summary>
public sealed class StreamedPlanTests
{
    /// <summary>A GPU with small VRAM and an NVMe profile (budgets come from --vram-budget/--ram-budget).</summary>
    internal static string TinyGpu => Profile("tiny-gpu", """
        { "name": "tiny-gpu", "comment": "streaming tests", "backend": "cuda", "gpu": "Test GPU", "sm": 90,
          "vram": "1GiB", "ram": "1GiB", "pcie_gen": 4, "pcie_width": 16, "h2d_gbps": 25, "device_gbps": 1000,
          "nvme": { "read_gbps": 3, "block_size": 4096, "max_transfer": "128KiB" } }
        """);

    /// <summary>cpu-only with an NVMe source, so a small --ram-budget gives tier C.</summary>
    internal static string TinyCpu => Profile("tiny-cpu", """
        { "name": "tiny-cpu", "comment": "streaming tests", "backend": "cpu", "ram": "16GiB", "device_gbps": 40,
          "nvme": { "read_gbps": 3, "block_size": 4096, "max_transfer": "128KiB" } }
        """);

    private static string Profile(string name, string json)
    {
        string path = TestPlans.TempFile(name + ".json");
        lock (typeof(StreamedPlanTests))
            if (!File.Exists(path)) File.WriteAllText(path, json);
        return path;
    }

    /// <summary>name → (model, ntc plan arguments, tiers A/B/C the plan must hold). Budgets for ctx 128: each
    /// stories260K layer image is 184 KiB (216 KiB for pad256-Q4_K_M), the workspace holds the split-k GEMMs' partial
    /// tiles (mm_part: 128 KiB, 512 KiB for pad256); see docs/streaming.md.</summary>
    private static readonly Dictionary<string, (string Model, string[] Args, int A, int B, int C)> Cases = new()
    {
        ["all-B"] = ("stories260K", ["--hw", "tiny-gpu", "--vram-budget", "828K", "--ram-budget", "2M"], 0, 5, 0),
        ["B+C"] = ("stories260K", ["--hw", "tiny-gpu", "--vram-budget", "828K", "--ram-budget", "1000K"], 0, 2, 3),
        ["A+B+C"] = ("stories260K", ["--hw", "tiny-gpu", "--vram-budget", "1028K", "--ram-budget", "800K"], 1, 1, 3),
        ["B+C 3 slots"] = ("stories260K", ["--hw", "tiny-gpu", "--vram-budget", "1008K", "--ram-budget", "1000K", "--slots", "3"], 0, 1, 4),
        ["cpu A+C 1 slot"] = ("stories260K", ["--hw", "tiny-cpu", "--ram-budget", "1328K", "--slots", "1"], 2, 0, 3),
        ["Q4_K_M A+B+C"] = ("stories260K-pad256-Q4_K_M", ["--hw", "tiny-gpu", "--vram-budget", "1512K", "--ram-budget", "800K"], 1, 1, 3),
    };

    public static TheoryData<string, StreamFrom> Plans()
    {
        var data = new TheoryData<string, StreamFrom>();
        foreach (var (name, c) in Cases)
        {
            data.Add(name, StreamFrom.Direct);
            if (c.C > 0) data.Add(name, StreamFrom.Mmap);
        }
        return data;
    }

    internal static string PlanFor(string name)
    {
        var (model, args, _, _, _) = Cases[name];
        string[] resolved = args.Select(a => a switch { "tiny-gpu" => TinyGpu, "tiny-cpu" => TinyCpu, _ => a }).ToArray();
        string path = TestPlans.TempFile($"{model}.{name.Replace(' ', '_').Replace('+', '_')}.plan");
        lock (Cases)
            if (!File.Exists(path)) TestPlans.Make(RepoPaths.Model(model + ".gguf"), path, [.. resolved, "--ctx", "128"]);
        return path;
    }

    internal static LoadedPlan Load(string name, StreamFrom from = StreamFrom.Direct) =>
        LoadedPlan.Load(PlanFor(name), threads: 2, options: new PlanRunOptions
        {
            Backend = BackendKind.Cpu,
            Streaming = new StreamingOptions { From = from, Notices = TextWriter.Null },
        });

    private static void AssertTiers(LoadedPlan plan, string name)
    {
        var (_, _, a, b, c) = Cases[name];
        Assert.Equal((a, b, c), (plan.Plan.Layers.Count(l => l.Tier == Tier.A), plan.Plan.Layers.Count(l => l.Tier == Tier.B),
            plan.Plan.Layers.Count(l => l.Tier == Tier.C)));
        Assert.NotNull(plan.Streamer);
        Assert.Equal(b + c, plan.Streamer!.StreamedLayerCount);
    }

    [Theory]
    [MemberData(nameof(Plans))]
    public void Teacher_forced_logits_are_bit_identical_to_the_resident_plan(string name, StreamFrom from)
    {
        string model = Cases[name].Model;
        var reference = LlamaCppReference.Load(model + ".ref.txt");
        int[] sequence = reference.TeacherForcedSequence;

        using var resident = TestPlans.Load(model);
        Assert.Null(resident.Streamer);
        int vocab = resident.Model.Config.VocabSize;
        var expected = new float[sequence.Length * vocab];
        resident.Model.Forward(sequence, 0, expected);

        using var streamed = Load(name, from);
        AssertTiers(streamed, name);
        var actual = new float[sequence.Length * vocab];
        var before = streamed.Streamer!.Counters;
        streamed.Model.Forward(sequence, 0, actual);
        var moved = streamed.Streamer.Counters - before;

        Assert.True(expected.AsSpan().SequenceEqual(actual), $"{name} ({from}): logits differ from the resident plan's");
        // A plan of batch 1 runs one pass per token, and every pass streams every streamed layer once.
        Assert.Equal(sequence.Length, moved.Passes);
        Assert.Equal(streamed.Plan.Prediction.BytesPinned, streamed.Streamer.PassBytesPinned);
        Assert.Equal(streamed.Plan.Prediction.BytesNvme, streamed.Streamer.PassBytesNvme);
        if (Cases[name].C > 0) Assert.True(moved.ReadBytes > 0, "no tier-C bytes were read");
        if (Cases[name].B > 0) Assert.True(moved.CopiedPinned > 0, "no tier-B bytes were copied");
    }

    [Theory]
    [MemberData(nameof(Plans))]
    public void Greedy_tokens_are_those_of_the_resident_plan(string name, StreamFrom from)
    {
        string model = Cases[name].Model;
        var reference = LlamaCppReference.Load(model + ".ref-kvf32.txt");
        List<int> Greedy(LoadedPlan plan)
        {
            var session = plan.OpenSession(new SamplerSettings { Temperature = 0 });
            session.Feed(reference.PromptTokens);
            var tokens = new List<int>();
            session.Generate(32, _ => false, (t, _) => tokens.Add(t));
            return tokens;
        }
        List<int> expected;
        using (var resident = TestPlans.Load(model)) expected = Greedy(resident);
        using var streamed = Load(name, from);
        AssertTiers(streamed, name);
        Assert.Equal(expected, Greedy(streamed));
        if (model == "stories260K") Assert.Equal(reference.GenTokens, expected);   // F32: llama.cpp's own greedy tokens
    }

    [Fact]
    public unsafe void A_prompt_batch_streams_each_layer_once()
    {
        // A plan of n_batch 64 runs a 40-token prompt in one pass, and the engine streams each layer once per pass,
        // with the logits of the same plan run resident (every weight read in place from the map).
        string path = TestPlans.TempFile("stories260K.B_C_batch64.plan");
        lock (Cases)
            if (!File.Exists(path))
                TestPlans.Make(RepoPaths.Model("stories260K.gguf"), path, "--hw", TinyGpu, "--vram-budget", "1128K", "--ram-budget", "800K",
                    "--ctx", "128", "--batch", "64");
        var plan = PlanReader.LoadFor(path, null, null, EngineInfo.Build);
        Assert.Equal(64, plan.Inputs.Batch);
        Assert.True(plan.Layers.Count(l => l.Tier == Tier.B) > 0 && plan.Layers.Count(l => l.Tier == Tier.C) > 0,
            string.Join(",", plan.Layers.Select(l => l.Tier)));
        string gguf = PlanModelPath.Resolve(plan, path)!;
        using var file = MappedModelFile.Open(gguf, plan.Fingerprints.ModelFileSize);
        using var arenas = HostArenas.ForPlan(plan, file.Base, file.Length);
        var weights = CpuWeights.FromPlan(plan, file.Base, gguf, t => (nint)arenas.KernelAddress(t, file.Base));
        using var streamer = LayerStreamer.Start(plan, arenas, gguf, new StreamingOptions { Notices = TextWriter.Null })!;
        var options = new CpuModelOptions { Threads = 2 };
        using var streamed = new CpuModel(plan, weights, options, streamer);
        using var resident = new CpuModel(plan, CpuWeights.FromPlan(plan, file.Base, gguf), options);

        int[] prompt = Enumerable.Range(0, 40).Select(i => (i * 37 + 1) % plan.Config.VocabSize).ToArray();
        var expected = new float[prompt.Length * plan.Config.VocabSize];
        var actual = new float[expected.Length];
        resident.Forward(prompt, 0, expected);
        var before = streamer.Counters;
        streamed.Forward(prompt, 0, actual);
        Assert.Equal(1, (streamer.Counters - before).Passes);
        Assert.True(expected.AsSpan().SequenceEqual(actual));
    }

    [Fact]
    public void Decoding_a_streamed_token_allocates_nothing()
    {
        using var plan = Load("A+B+C");
        var session = plan.OpenSession(new SamplerSettings { Temperature = 0.8f, TopK = 40, TopP = 0.9f, Seed = 7 });
        session.Feed([1, 403, 407]);
        session.Generate(4, _ => false, (_, _) => { });   // warm-up (JIT, first waits)
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 16; i++) session.Feed(session.Sample());
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
