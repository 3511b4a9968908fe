using Engine.Kernels.Ptx;
using Engine.Plans.Gguf;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Planner;

/// <summary>The plan's launches against the compiled kernels (Engine.Kernels.Ptx): every kernel is an entry point of
/// the kernel table with the same id, name and argument bytes; every launch gives one argument per PTX parameter of
/// a kind that fits its type, with views of the element type the parameter reads; GPU plans carry the PTX of each
/// kernel for the GPU's architecture, cpu plans none.</summary>
public sealed class PlanKernelTests
{
    private static Plan Make(LlamaShape shape, string fileType, string hw, int batch = 1, Func<string, int, GgmlType>? types = null,
        ActivationPrecision activations = ActivationPrecision.Int8)
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, shape, fileType, types);
        return Engine.Plans.Planner.Make(new PlanOptions
        {
            ModelPath = model, Hardware = HardwareProfiles.Resolve(hw), Ctx = 256, Batch = batch, EngineVersion = "0.1.0",
            Activations = activations,
        }, Engine.Graph.Generated.LlamaProgram.Program);
    }

    public static TheoryData<string, string> Cases() => new()
    {
        { "F32", "cpu-only" }, { "Q8_0", "h100-80g" }, { "Q4_K_M", "rtx3090-48g" }, { "Q4_0", "h100-80g" }, { "F16", "rtx4090-64g" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_launch_matches_its_entry_points_parameters(string fileType, string hw)
    {
        var plan = Make(LlamaShape.Tiny with { Embd = 512, Ff = 1024, Heads = 8, HeadsKv = 2 }, fileType, hw, batch: 4);
        CheckAgainstKernelTable(plan);
        Assert.Equal(4, plan.Inputs.Batch);
    }

    [Fact]
    public void Gpu_plans_embed_the_ptx_of_their_kernels_for_the_gpus_architecture()
    {
        var h100 = Make(LlamaShape.Tiny, "Q8_0", "h100-80g");
        Assert.Equal(h100.Kernels.Select(k => k.Entry).Order(StringComparer.Ordinal), h100.Ptx.Select(m => m.Name));
        Assert.All(h100.Ptx, m => Assert.Equal(90, m.Sm));
        Assert.All(h100.Ptx, m => Assert.Equal(PtxModules.Get("sm_90")[m.Name], System.Text.Encoding.ASCII.GetString(m.Text)));
        var rtx = Make(LlamaShape.Tiny, "Q8_0", "rtx3090-48g");
        Assert.All(rtx.Ptx, m => Assert.Equal(80, m.Sm));   // sm_86 runs the sm_80 PTX
        Assert.Empty(Make(LlamaShape.Tiny, "Q8_0", "cpu-only").Ptx);
    }

    [Fact]
    public void Kv_cache_is_f16_rows_of_kv_dim_per_context_position()
    {
        var s = LlamaShape.Tiny;
        var plan = Make(s, "F32", "cpu-only");
        int kvDim = s.HeadsKv * (s.Embd / s.Heads);
        var kv = plan.Buffers.Where(b => b.Role == BufferRole.KvCache && b.Name is not ("attn_sync" or "mm_sync")).ToList();
        Assert.Equal(2 * s.Layers, kv.Count);
        Assert.All(kv, b => Assert.Equal((long)kvDim * 256 * 2, b.Size));
        // Beside each layer's cache, attention's range counters: an i32 a kv head and token of a step.
        var sync = plan.Buffers.Where(b => b.Name == "attn_sync").ToList();
        Assert.Equal(Enumerable.Range(0, s.Layers), sync.Select(b => b.Layer));
        Assert.All(sync, b => Assert.Equal((long)s.HeadsKv * plan.Inputs.Batch * 4, b.Size));
        // And the split-k GEMMs' tile tickets, n_embd / 16 a layer, as many as the workspace holds partial tiles.
        var tickets = plan.Buffers.Where(b => b.Name == "mm_sync").ToList();
        Assert.Equal(Enumerable.Range(0, s.Layers), tickets.Select(b => b.Layer));
        Assert.All(tickets, b => Assert.Equal(s.Embd / 16 * 4L, b.Size));
        Assert.Equal(s.Embd / 16 * 128 * 64 * 4L, plan.Buffers.Single(b => b.Name == "mm_part").Size);
    }

    [Fact]
    public void Mixed_gate_and_up_formats_run_the_unfused_fallback()
    {
        var plan = Make(LlamaShape.Tiny, "Q8_0", "h100-80g", types: (role, layer) =>
            role == "ffn_up" && layer == 1 ? GgmlType.Q4_0 : LlamaModels.TypeOf("Q8_0", role, layer, LlamaShape.Tiny));
        CheckAgainstKernelTable(plan);
        Assert.DoesNotContain(plan.Kernels, k => k.Family == "gemv_swiglu");
        Assert.Contains(plan.Kernels, k => k.Entry == "SwiGlu");
        Assert.Contains(plan.Kernels, k => k.Entry == "Gemv_Q4_0");
        var layer1 = plan.Instructions.Where(i => i.Layer == 1).Select(i => i.OpName).ToList();
        Assert.Equal(["ffn_gate_up_gate", "ffn_gate_up_up", "ffn_gate_up_swiglu"], layer1.Where(n => n.StartsWith("ffn_gate_up")));
        Assert.Contains(plan.Buffers, b => b.Name == "ffn_gate_up_up" && b.Role == BufferRole.Activation);
    }

    [Fact]
    public void Decode_shapes_follow_the_grid_rules_and_n_tokens_is_a_step_argument()
    {
        var s = LlamaShape.Tiny;
        var plan = Make(s, "Q8_0", "h100-80g");
        var qkv = plan.Instructions.First(i => i.Layer == 0 && i.OpName == "qkv_proj");
        int kvDim = s.HeadsKv * (s.Embd / s.Heads);
        Assert.Equal(("GemvQkv_Q8_0", (uint)(s.Embd / 4 + 2 * kvDim / 4), 1u, 128u), (Entry(plan, qkv), qkv.Shape.GridX, qkv.Shape.GridY, qkv.Shape.BlockX));
        Assert.Equal(new KernelArg(ArgKind.Tokens, 1), qkv.Arguments[^1]);                   // n_tokens
        var rope = plan.Instructions.First(i => i.Layer == 0 && i.OpName == "rope_store");
        int pairs = (s.Heads + s.HeadsKv) * (s.Embd / s.Heads / 2);
        Assert.Equal(("RopeKvStore", new KernelArg(ArgKind.Tokens, pairs)), (Entry(plan, rope), rope.Arguments[0]));   // extent = pairs·n_tokens
        var down = plan.Instructions.First(i => i.Layer == 0 && i.OpName == "ffn_down");
        Assert.Equal(("GemvAdd_Q8_0", (uint)s.Embd / 4), (Entry(plan, down), down.Shape.GridX));   // the residual add fused in
        var attention = plan.Instructions.First(i => i.Layer == 0 && i.OpName == "attention");
        Assert.Equal(((uint)s.HeadsKv * 32, 1u, 256u), (attention.Shape.GridX, attention.Shape.GridY, attention.Shape.BlockX));   // 32 ranges a kv head
        float scale = BitConverter.Int32BitsToSingle((int)attention.Arguments[^1].Value);
        Assert.Equal(1 / MathF.Sqrt(s.Embd / s.Heads), scale);
    }

    /// <summary>q, k and v run as one launch (gemv_qkv, batch gemm_qkv) in every layer of a Q4_K_M file: the format's
    /// entry where the three weights share it, the Q4_K/Q6_K pair's in the use_more_bits layers that keep attn_v in
    /// Q6_K.</summary>
    [Fact]
    public void Qkv_fuse_in_one_format_or_in_a_format_pair()
    {
        var plan = Make(LlamaShape.Tiny with { Embd = 512, Ff = 1024, Heads = 8, HeadsKv = 2, Layers = 8 }, "Q4_K_M", "h100-80g", batch: 64);
        CheckAgainstKernelTable(plan);
        var launches = plan.Instructions.Where(i => i.Opcode == Opcode.Launch && i.Layer >= 0).ToList();
        int one = 0, pair = 0;
        foreach (var layer in launches.GroupBy(i => i.Layer))
        {
            var names = layer.Select(i => i.OpName).ToList();
            Assert.DoesNotContain("v_proj", names);
            var i = layer.Single(i => i.OpName == "qkv_proj");
            var entries = (Entry(plan, i), plan.Kernels.First(k => k.Id == i.BatchKernelId).Entry);
            if (entries == ("GemvQkv_Q4_K", "GemmQkv_Q4_K")) one++;
            else
            {
                Assert.Equal(("GemvQkv_Q4_K_Q6_K", "GemmQkv_Q4_K_Q6_K"), entries);
                pair++;
            }
        }
        Assert.True(one > 0 && pair > 0, $"{one} layers in one format and {pair} in the pair");
    }

    /// <summary>Where q and k differ in format (no pair entry fits), q, k and v run as three gemv launches (batch
    /// gemm), named after their outputs.</summary>
    [Fact]
    public void Qkv_run_apart_where_q_and_k_differ_in_format()
    {
        var plan = Make(LlamaShape.Tiny, "Q8_0", "h100-80g", batch: 64, types: (role, layer) =>
            role == "attn_k" && layer == 1 ? GgmlType.Q4_0 : LlamaModels.TypeOf("Q8_0", role, layer, LlamaShape.Tiny));
        CheckAgainstKernelTable(plan);
        var layer1 = plan.Instructions.Where(i => i.Opcode == Opcode.Launch && i.Layer == 1).ToList();
        Assert.Equal(["q_proj", "k_proj", "v_proj"], layer1.Select(i => i.OpName).Where(n => n.EndsWith("_proj", StringComparison.Ordinal) && n != "o_proj"));
        Assert.Equal(("Gemv_Q4_0", "Gemm_Q4_0"), (Entry(plan, layer1.First(i => i.OpName == "k_proj")),
            plan.Kernels.First(k => k.Id == layer1.First(i => i.OpName == "k_proj").BatchKernelId).Entry));
        Assert.Equal("GemvQkv_Q8_0", Entry(plan, plan.Instructions.First(i => i.Layer == 0 && i.OpName == "qkv_proj")));
    }

    /// <summary>--activations f32: every quantized matmul takes its f32act entry and no batch kernel, no quantize op
    /// is launched, the float formats keep their own entries; the plan records the mode and round-trips it.</summary>
    [Theory]
    [InlineData("Q4_K_M", "h100-80g")]
    [InlineData("Q8_0", "cpu-only")]
    [InlineData("F16", "h100-80g")]
    public void F32_activations_take_the_f32act_matmuls_and_no_batch_kernel(string fileType, string hw)
    {
        var plan = Make(LlamaShape.Tiny with { Embd = 512, Ff = 1024, Heads = 8, HeadsKv = 2 }, fileType, hw, batch: 64,
            activations: ActivationPrecision.F32);
        CheckAgainstKernelTable(plan);
        Assert.Equal(ActivationPrecision.F32, plan.Inputs.Activations);
        var table = PtxModules.EntryPoints;
        var launches = plan.Instructions.Where(i => i.Opcode == Opcode.Launch).ToList();
        Assert.DoesNotContain(launches, i => i.HasBatchKernel);
        Assert.DoesNotContain(plan.Kernels, k => k.Family == "quantize" || k.Family.StartsWith("gemm", StringComparison.Ordinal));
        foreach (var k in plan.Kernels.Where(k => k.Family.StartsWith("gemv", StringComparison.Ordinal)))
        {
            bool quantized = k.WeightType is not ((uint)GgmlType.F32 or (uint)GgmlType.F16);
            Assert.Equal(quantized, table[(int)k.Id].F32Activations);
            Assert.Equal(quantized, k.Entry.EndsWith("_F32Act", StringComparison.Ordinal));
        }
        if (fileType == "Q4_K_M") Assert.Contains(plan.Kernels, k => k.Entry == "GemvQkv_Q4_K_Q6_K_F32Act");   // attn_v in Q6_K: the pair's
        // The same layers, weights and buffers as the default plan; only kernels and the quantize launches differ.
        var int8 = Make(LlamaShape.Tiny with { Embd = 512, Ff = 1024, Heads = 8, HeadsKv = 2 }, fileType, hw, batch: 64);
        Assert.Equal(ActivationPrecision.Int8, int8.Inputs.Activations);
        Assert.Equal(int8.Buffers, plan.Buffers);
        Assert.Equal(int8.Instructions.Where(i => i.Opcode != Opcode.Launch || Entry(int8, i) != "Quantize").Select(i => i.OpName),
            launches.Select(i => i.OpName));
        using var dir = new TempDir();
        PlanWriter.Write(plan, dir.File("f32.plan"));
        Assert.Equal(ActivationPrecision.F32, PlanReader.Load(dir.File("f32.plan")).Inputs.Activations);
    }

    /// <summary>An 8-bit activation is written only where a matmul reads it: a float-weight file's plan has no
    /// quantize and runs attention alone (its GEMVs read f32 x); a quantized file's has, per layer, the attention
    /// fused with its output's quantize (head_dim 64 here) and act_quant; with head_dim 8 (not a multiple of 32) the
    /// fused attention falls back to attention then quantize.</summary>
    [Theory]
    [InlineData("F16", 64, 0, 0, 1)]
    [InlineData("F32", 64, 0, 0, 1)]
    [InlineData("Q8_0", 64, 1, 1, 0)]
    [InlineData("Q4_K_M", 64, 1, 1, 0)]
    [InlineData("Q8_0", 8, 2, 0, 1)]
    public void Quantize_is_launched_only_for_int8_matmuls(string fileType, int headDim, int quantize, int fused, int plain)
    {
        var s = LlamaShape.Tiny with { Embd = 512, Heads = 512 / headDim, HeadsKv = 512 / headDim / 2 };
        var plan = Make(s, fileType, "h100-80g", batch: 64);
        int Count(string entry) => plan.Instructions.Count(i => i.Opcode == Opcode.Launch && i.Layer == 1 && Entry(plan, i) == entry);
        Assert.Equal((quantize, fused, plain), (Count("Quantize"), Count("AttentionQuant"), Count("Attention")));
        // The attention's short kernel (the spec's short=) follows the family the planner chose, and is dropped where
        // head_dim does not suit it (not a multiple of 16); it survives the file.
        var attention = plan.Instructions.Single(i => i.Opcode == Opcode.Launch && i.Layer == 1 && i.OpName == "attention");
        string? Short(Plan p, Instruction i) => i.HasShortKernel ? p.Kernels.Single(k => k.Id == i.ShortKernelId).Entry : null;
        Assert.Equal(headDim % 16 != 0 ? null : fused == 1 ? "AttentionQuantShort" : "AttentionShort", Short(plan, attention));
        Assert.All(plan.Instructions.Where(i => i.OpName != "attention"), i => Assert.False(i.HasShortKernel));
        using var dir = new TempDir();
        PlanWriter.Write(plan, dir.File("p.plan"));
        var read = PlanReader.Load(dir.File("p.plan"));
        Assert.Equal(plan.Instructions.Select(i => i.ShortKernelId), read.Instructions.Select(i => i.ShortKernelId));
    }

    /// <summary>Prompt steps run the attention's tiled kernel (the spec's batch=: tensor cores, kernels/AttentionTiled.cs)
    /// where head_dim is a multiple of 32 up to 128; past 128 the fused attention stays, without a batch (or short)
    /// kernel. The batch kernel takes the launch's argument block and survives the file.</summary>
    [Theory]
    [InlineData(64, "AttentionQuantTiled")]
    [InlineData(128, "AttentionQuantTiled")]
    [InlineData(160, null)]
    public void The_attention_of_prompt_steps_runs_the_tiled_kernel_where_head_dim_suits_it(int headDim, string? tiled)
    {
        var plan = Make(LlamaShape.Tiny with { Embd = 4 * headDim, Heads = 4, HeadsKv = 2 }, "Q8_0", "h100-80g", batch: 64);
        CheckAgainstKernelTable(plan);
        var attention = plan.Instructions.Single(i => i.Opcode == Opcode.Launch && i.Layer == 1 && i.OpName == "attention");
        Assert.Equal("AttentionQuant", Entry(plan, attention));
        string? Batch(Plan p, Instruction i) => i.HasBatchKernel ? p.Kernels.Single(k => k.Id == i.BatchKernelId).Entry : null;
        Assert.Equal(tiled, Batch(plan, attention));
        using var dir = new TempDir();
        PlanWriter.Write(plan, dir.File("p.plan"));
        var read = PlanReader.Load(dir.File("p.plan"));
        Assert.Equal(tiled, Batch(read, read.Instructions.Single(i => i.Opcode == Opcode.Launch && i.Layer == 1 && i.OpName == "attention")));
    }

    /// <summary>The validator holds inputs.activations to the kernels: an int8 plan relabelled f32 (or the reverse)
    /// is refused with the field and the mode.</summary>
    [Fact]
    public void A_plan_whose_kernels_contradict_its_activation_mode_is_refused()
    {
        var int8 = Make(LlamaShape.Tiny, "Q8_0", "h100-80g", batch: 64);
        var relabelled = int8 with { Inputs = int8.Inputs with { Activations = ActivationPrecision.F32 } };
        var e = Assert.Throws<PlanException>(() => PlanValidator.Check(relabelled, "x.plan"));
        Assert.Contains("kernel Gemv_Q8_0 = int8 activations: the plan records activations f32", e.Message);
        var f32 = Make(LlamaShape.Tiny, "Q8_0", "h100-80g", activations: ActivationPrecision.F32);
        e = Assert.Throws<PlanException>(() => PlanValidator.Check(f32 with { Inputs = f32.Inputs with { Activations = ActivationPrecision.Int8 } }, "x.plan"));
        Assert.Contains("f32 activations: the plan records activations int8", e.Message);
    }

    private static string Entry(Plan p, Instruction i) => p.Kernels.Single(k => k.Id == i.KernelId).Entry;

    internal static void CheckAgainstKernelTable(Plan plan)
    {
        var table = PtxModules.EntryPoints;
        foreach (var k in plan.Kernels)
        {
            Assert.True(k.Id < table.Count, $"kernel id {k.Id}");
            var e = table[(int)k.Id];
            Assert.Equal((e.Name, e.Family, e.ArgumentBytes), (k.Entry, k.Family, (int)k.ArgumentBytes));
            // A format pair's kernel (q·k/v) records its first weight's type.
            Assert.Equal(e.Format?.Split('/')[0] ?? "", k.WeightType == PlanFormat.NoWeightType ? "" : ((GgmlType)k.WeightType).ToString());
        }
        foreach (var ins in plan.Instructions.Where(i => i.Opcode == Opcode.Launch))
        {
            var e = table[(int)ins.KernelId];
            Assert.Equal(e.Params.Count, ins.Arguments.Length);
            Assert.Equal((uint)e.BlockSize, ins.Shape.BlockX);
            for (int j = 0; j < e.Params.Count; j++)
            {
                var p = e.Params[j];
                var a = ins.Arguments[j];
                string where = $"{ins.OpName} layer {ins.Layer} {e.Name}.{p.Name}";
                switch (p.Type)
                {
                    case "extent" or "i32": Assert.True(a.Kind is ArgKind.I32 or ArgKind.Tokens, where); Assert.True(a.Value > 0, where); break;
                    case "f32": Assert.True(a.Kind == ArgKind.F32, where); break;
                    case "view<u8>":   // a weight, or quantized activations (a byte buffer of the workspace)
                        Assert.True(a.Kind == ArgKind.Tensor || (a.Kind == ArgKind.Buffer && plan.Buffers[(int)a.Value].Role == BufferRole.Activation), where);
                        break;
                    case "view<f16>":
                        Assert.True(a.Kind == ArgKind.Buffer && plan.Buffers[(int)a.Value].Role == BufferRole.KvCache, where);
                        break;
                    case "view<i32>":   // token ids and positions; attention's range counters, the split-k GEMMs' tile
                                        // tickets (per layer, persistent)
                        bool counters = p.Name is "attn_sync" or "mm_sync";
                        Assert.True(a.Kind == ArgKind.Buffer && plan.Buffers[(int)a.Value].Role
                            == (counters ? BufferRole.KvCache : BufferRole.Input), where);
                        if (counters) Assert.Equal(ins.Layer, plan.Buffers[(int)a.Value].Layer);
                        break;
                    case "view<f32>":
                        Assert.True(a.Kind is ArgKind.Buffer or ArgKind.None
                            || (a.Kind == ArgKind.Tensor && plan.Tensors[(int)a.Value].Type == GgmlType.F32), where);
                        break;
                    default: Assert.Fail($"{where}: unknown parameter type {p.Type}"); break;
                }
            }
        }
    }
}
