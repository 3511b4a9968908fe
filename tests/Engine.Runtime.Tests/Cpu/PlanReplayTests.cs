using Engine.Plans;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cpu;
using Engine.Runtime.Tests.EndToEnd;
using Xunit;

namespace Engine.Runtime.Tests.Cpu;

/// <summary>The CPU backend runs the plan's instruction stream, not a pass of its own: its steps are the plan's launches
/// in order, a plan whose stream is altered computes what the altered stream says, and a launch the CPU cannot run as
/// written is refused at load with one line naming it.</summary>
public sealed unsafe class PlanReplayTests
{
    private sealed class Opened : IDisposable
    {
        public required Plan Plan { get; init; }
        public required MappedModelFile File { get; init; }
        public required string ModelPath { get; init; }
        public CpuModel Model(Plan? plan = null) =>
            new(plan ?? Plan, CpuWeights.FromPlan(plan ?? Plan, File.Base, ModelPath), new CpuModelOptions { Threads = 2 });
        public void Dispose() => File.Dispose();
    }

    private static Opened Open(string model, int batch = 1)
    {
        string path = TestPlans.For(model, batch: batch);
        var plan = PlanReader.LoadFor(path, null, null, EngineInfo.Build);
        string gguf = PlanModelPath.Resolve(plan, path)!;
        return new Opened { Plan = plan, File = MappedModelFile.Open(gguf, plan.Fingerprints.ModelFileSize), ModelPath = gguf };
    }

    [Fact]
    public void The_steps_are_the_plans_launches_in_order()
    {
        using var o = Open("stories260K-pad256-Q4_K_M");
        using var cpu = o.Model();
        var launches = o.Plan.Instructions.Select((x, i) => (x, i)).Where(p => p.x.Opcode == Opcode.Launch).ToList();
        var steps = cpu.Steps;

        // Every launch is covered once, in plan order: step i starts at its first launch and spans Launches of them.
        int next = 0;
        foreach (var s in steps)
        {
            Assert.Equal(launches[next].i, s.Instruction);
            Assert.Equal(launches[next].x.Layer, s.Layer);
            next += s.Launches;
        }
        Assert.Equal(launches.Count, next);

        // One layer: the plan's 10 launches as 8 steps (q, k and v are one launch and one pass; each quantize is
        // folded into the matmul that reads its output: head_dim 8 keeps attention and its quantize apart).
        var layer0 = steps.Where(s => s.Layer == 0).Select(s => (s.Kind, s.Launches)).ToArray();
        Assert.Equal(new[]
        {
            (CpuStepKind.RmsNorm, 1), (CpuStepKind.MatMul, 1), (CpuStepKind.RopeKvStore, 1),
            (CpuStepKind.Attention, 1), (CpuStepKind.MatMulAdd, 2), (CpuStepKind.RmsNorm, 1), (CpuStepKind.MatMulSwiGlu, 1),
            (CpuStepKind.MatMulAdd, 2),
        }, layer0);
        Assert.Equal(o.Plan.Config.LayerCount * layer0.Length + 4, steps.Count);   // + embedding, final norm, lm_head, argmax
        Assert.Equal(CpuStepKind.ArgMax, steps[^1].Kind);
        Assert.True(steps[^1].Epilogue && steps[^2].Epilogue && steps[^3].Epilogue && !steps[0].Epilogue);
    }

    [Fact]
    public void A_stream_without_its_layers_gives_the_logits_of_the_embeddings()
    {
        // The plan's launches of layer ≥ 0 removed: the logits become output · rms_norm(token_embd[t]) · output_norm,
        // computed here in float64 (stories260K is F32). The backend's own forward pass would still run 5 layers.
        using var o = Open("stories260K");
        var noLayers = o.Plan with { Instructions = o.Plan.Instructions.Where(x => x.Layer < 0).ToList() };
        using var cpu = o.Model(noLayers);
        var w = cpu.Weights;
        int vocab = o.Plan.Config.VocabSize, d = o.Plan.Config.EmbeddingLength;
        int[] tokens = [1, 403, 407, 3];
        var actual = new float[tokens.Length * vocab];
        cpu.Forward(tokens, 0, actual);

        var expected = new double[actual.Length];
        var e = new float[d];
        var row = new float[d];
        for (int b = 0; b < tokens.Length; b++)
        {
            fixed (float* pe = e) w.TokenEmbedding.DequantizeRow(tokens[b], pe);
            double ss = e.Sum(v => (double)v * v);
            double scale = 1 / Math.Sqrt(ss / d + o.Plan.Config.RmsEpsilon);
            for (int r = 0; r < vocab; r++)
            {
                fixed (float* pr = row) w.Output.DequantizeRow(r, pr);
                double dot = 0;
                for (int i = 0; i < d; i++) dot += row[i] * (e[i] * scale * w.OutputNorm[i]);
                expected[b * vocab + r] = dot;
            }
        }
        double nmse = Reference.Nmse(actual, expected);
        Assert.True(nmse < 1e-10, $"NMSE {nmse:E2}");

        // And the full stream gives other logits (the layers ran).
        using var full = o.Model();
        var withLayers = new float[actual.Length];
        full.Forward(tokens, 0, withLayers);
        Assert.True(Reference.Nmse(withLayers, expected) > 1e-3);
    }

    [Theory]
    [InlineData("stories260K")]
    [InlineData("stories260K-pad256-Q4_K_M")]
    public void Fused_launches_rewritten_as_their_unfused_ops_give_the_same_logits(string model)
    {
        // Every layer's o_proj and ffn_down (gemv_add) become gemv into xn (free at both points), then add into x; its ffn_gate_up (gemv_swiglu) becomes
        // gemv gate → ffn_act, gemv up → the logits buffer (free until the epilogue), then swiglu → ffn_act: the
        // spec's own fallbacks (docs/graph-spec.md "fused="). The CPU runs the same arithmetic in both, so the logits
        // are bit for bit those of the fused stream; the rewritten stream exercises the add and swiglu families.
        using var o = Open(model, batch: 4);
        var plan = o.Plan;
        int Buffer(string name) => plan.Buffers.Select((b, i) => (b, i)).First(p => p.b.Name == name && p.b.Layer < 0).i;
        KernelArg Arg(Instruction x, string name)
        {
            var ps = Engine.Runtime.Generated.KernelTable.All[(int)x.KernelId].Params;
            for (int j = 0; j < ps.Count; j++) if (ps[j].Name == name) return x.Arguments[j];
            throw new InvalidOperationException(name);
        }
        Instruction Launch(string entry, Instruction like, string op, Dictionary<string, KernelArg> args)
        {
            var id = (Engine.Runtime.Generated.KernelId)Enum.Parse(typeof(Engine.Runtime.Generated.KernelId), entry);
            var ps = Engine.Runtime.Generated.KernelTable.All[(int)id].Params;
            // No batch kernel: the fused launch's (e.g. GemmAdd) does not take the unfused op's arguments, and the CPU
            // backend runs none.
            return like with { KernelId = (uint)id, OpName = op, Args = ps.Select(p => args[p.Name]).ToArray(), BatchKernelId = PlanFormat.NoBatchKernel };
        }
        string Gemv(KernelArg weight) => "Gemv_" + plan.Tensors[(int)weight.Value].Type;
        var noQuant = new KernelArg(ArgKind.None, 0);
        var rewritten = new List<Instruction>();
        int replaced = 0;
        foreach (var x in plan.Instructions)
        {
            if (x.OpName is "o_proj" or "ffn_down")
            {
                var w = Arg(x, "w");
                var xn = new KernelArg(ArgKind.Buffer, Buffer("xn"));
                rewritten.Add(Launch(Gemv(w), x, x.OpName + "_gemv", new()
                {
                    ["w"] = w, ["x"] = Arg(x, "a"), ["xq"] = noQuant, ["y"] = xn, ["rows"] = Arg(x, "rows"), ["cols"] = Arg(x, "cols"),
                    ["n_tokens"] = Arg(x, "n_tokens"),
                }));
                var n = new KernelArg(ArgKind.Tokens, Arg(x, "rows").Value);
                rewritten.Add(Launch("Add", x, x.OpName + "_add", new() { ["extent"] = n, ["x"] = Arg(x, "y"), ["y"] = xn, ["n"] = n }));
                replaced++;
                continue;
            }
            if (x.OpName == "ffn_gate_up")
            {
                var t = new KernelArg(ArgKind.Buffer, Buffer("logits"));
                foreach (var (w, y, name) in new[] { (Arg(x, "gate"), Arg(x, "y"), "gate"), (Arg(x, "up"), t, "up") })
                    rewritten.Add(Launch(Gemv(w), x, "ffn_" + name, new()
                    {
                        ["w"] = w, ["x"] = Arg(x, "x"), ["xq"] = Arg(x, "xq"), ["y"] = y, ["rows"] = Arg(x, "rows"), ["cols"] = Arg(x, "cols"),
                        ["n_tokens"] = Arg(x, "n_tokens"),
                    }));
                var n = new KernelArg(ArgKind.Tokens, Arg(x, "rows").Value);
                rewritten.Add(Launch("SwiGlu", x, "ffn_swiglu", new() { ["extent"] = n, ["gate"] = Arg(x, "y"), ["up"] = t, ["y"] = Arg(x, "y"), ["n"] = n }));
                replaced++;
                continue;
            }
            rewritten.Add(x);
        }
        Assert.Equal(3 * plan.Config.LayerCount, replaced);

        using var fused = o.Model();
        using var unfused = o.Model(plan with { Instructions = rewritten });
        Assert.Contains(unfused.Steps, s => s.Kind == CpuStepKind.Add);
        Assert.Contains(unfused.Steps, s => s.Kind == CpuStepKind.SwiGlu);
        Assert.DoesNotContain(unfused.Steps, s => s.Kind is CpuStepKind.MatMulAdd or CpuStepKind.MatMulSwiGlu);
        int[] tokens = [1, 403, 407, 3, 99, 12, 250];
        int vocab = plan.Config.VocabSize;
        var expected = new float[tokens.Length * vocab];
        var actual = new float[expected.Length];
        fused.Forward(tokens, 0, expected);
        unfused.Forward(tokens, 0, actual);
        Assert.True(expected.AsSpan().SequenceEqual(actual), "the unfused stream's logits differ from the fused stream's");
    }

    [Fact]
    public void A_pass_reads_the_weights_the_launch_names()
    {
        // lm_head pointed at layer 0's attn_q ([64] → [64] in stories260K) instead of the output matrix ([64] → [512]):
        // the rows the launch declares no longer fit the weight it names, and the load says which launch and why.
        using var o = Open("stories260K");
        var ins = o.Plan.Instructions.ToList();
        int lm = ins.FindLastIndex(x => x.OpName == "lm_head");
        int q = o.Plan.Tensors.Select((t, i) => (t, i)).First(p => p.t.Name == "blk.0.attn_q.weight").i;
        var args = ins[lm].Arguments.ToArray();
        args[0] = new KernelArg(ArgKind.Tensor, q);
        ins[lm] = ins[lm] with { Args = args };
        var e = Assert.Throws<PlanException>(() => o.Model(o.Plan with { Instructions = ins }).Dispose());
        Assert.Contains($"instruction {lm} (lm_head, layer -1", e.Message);
        Assert.Contains("rows is 512, expected 64", e.Message);
    }

    [Fact]
    public void A_view_too_small_for_n_batch_tokens_is_refused()
    {
        using var o = Open("stories260K", batch: 4);
        var ins = o.Plan.Instructions.ToList();
        int attention = ins.FindIndex(x => x.OpName == "attention");
        int tokensBuffer = o.Plan.Buffers.Select((b, i) => (b, i)).First(p => p.b.Name == "tokens").i;
        var args = ins[attention].Arguments.ToArray();
        int y = Array.FindIndex(Engine.Runtime.Generated.KernelTable.All[(int)ins[attention].KernelId].Params.ToArray(), p => p.Name == "y");
        args[y] = new KernelArg(ArgKind.Buffer, tokensBuffer);
        ins[attention] = ins[attention] with { Args = args };
        var e = Assert.Throws<PlanException>(() => o.Model(o.Plan with { Instructions = ins }).Dispose());
        Assert.Equal($"instruction {attention} (attention, layer 0, Attention): argument y: buffer 'tokens' holds 16 bytes, needs {4 * 64 * 4}", e.Message);
    }
}
