using System.Runtime.InteropServices;
using Engine.Plans;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cuda;
using Engine.Runtime.Generated;
using Engine.Tests;
using Xunit;

namespace Engine.Runtime.Tests.Cuda;

/// <summary>The CUDA backend's argument blocks, without a GPU: the plan's arguments packed by parameter offset must be
/// byte for byte the generated launcher struct built by name from the same tensors and buffers, and the launchers'
/// grid rules must give the plan's launch shapes.</summary>
public sealed class ArgumentBlockTests
{
    private static readonly ulong[] Bases = [0x7f00_0000_0000, 0x7e00_1000_0000, 0];

    internal static Plan PlanFor(string model, string hw = "h100-80g", int batch = 8) =>
        Planner.Make(new PlanOptions { ModelPath = RepoPaths.Model(model), Hardware = HardwareProfiles.Resolve(hw), Ctx = 64, Batch = batch },
            Engine.Graph.Generated.LlamaProgram.Program);

    /// <summary>A plan of stories260K-Q8_0 for the tests that read a resident plan's launches (SkipTests,
    /// GreedyWordsTests), and those launches in order.</summary>
    internal static readonly Plan Stories = PlanFor("stories260K-Q8_0.gguf");

    internal static readonly Instruction[] StoriesLaunches = Stories.Instructions.Where(i => i.Opcode == Opcode.Launch).ToArray();

    private static DeviceView Tensor(Plan p, string name, int elementBytes)
    {
        var t = p.Tensors.Single(t => t.Name == name);
        return new DeviceView(Bases[t.DeviceArena] + (ulong)t.DeviceOffset, t.Size / elementBytes);
    }

    private static DeviceView Buffer(Plan p, string name, int elementBytes, int layer = -1)
    {
        var b = p.Buffers.Single(b => b.Name == name && b.Layer == layer);
        return new DeviceView(Bases[b.Arena] + (ulong)b.Offset, b.Size / elementBytes);
    }

    private static byte[] Packed(Plan p, string op, int layer, int nTokens)
    {
        var ins = p.Instructions.Single(i => i.OpName == op && i.Layer == layer);
        var block = new byte[ArgumentBlocks.Stride];
        ArgumentBlocks.Pack(p, ins, Bases, nTokens, block);
        return block;
    }

    private static void AssertSame<T>(T launcher, byte[] packed, int size) where T : struct
    {
        var expected = MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in launcher)).ToArray();
        Assert.Equal(expected[..size], packed[..size]);
    }

    [Fact]
    public void Packed_blocks_are_the_launcher_structs()
    {
        var p = PlanFor("stories260K.gguf");
        var c = p.Config;
        const int n = 3;
        var xn = Buffer(p, "xn", 4);
        var xnq = Buffer(p, "xnq", 1);

        var qkv = Launchers.GemvQkv_F32.Create(Tensor(p, "blk.0.attn_q.weight", 1), Tensor(p, "blk.0.attn_k.weight", 1),
            Tensor(p, "blk.0.attn_v.weight", 1), xn, xnq, Buffer(p, "q", 4), Buffer(p, "k", 4), Buffer(p, "v", 4), Buffer(p, "mm_part", 4),
            Buffer(p, "mm_sync", 4, 0), c.QDim, c.KvDim, c.EmbeddingLength, n);
        AssertSame(qkv, Packed(p, "qkv_proj", 0, n), Launchers.GemvQkv_F32.Size);
        Assert.Equal(qkv.Shape(), Launchers.ShapeOf(KernelId.GemvQkv_F32, Packed(p, "qkv_proj", 0, n)));
        Assert.Equal((uint)((c.QDim + 3) / 4 + 2 * ((c.KvDim + 3) / 4)), qkv.Shape().GridX);

        var norm = Launchers.RmsNorm.Create(Buffer(p, "x", 4), Tensor(p, "blk.1.ffn_norm.weight", 4), xn, xnq, c.EmbeddingLength, n, c.RmsEpsilon);
        AssertSame(norm, Packed(p, "ffn_norm", 1, n), Launchers.RmsNorm.Size);

        var positions = Buffer(p, "positions", 4);
        var rope = Launchers.RopeKvStore.Create(Buffer(p, "q", 4), Buffer(p, "k", 4), Buffer(p, "v", 4), Buffer(p, "k_cache", 2, 1),
            Buffer(p, "v_cache", 2, 1), positions, DeviceView.Empty, c.HeadCount, c.HeadCountKv, c.HeadDim, n, c.RopeFreqBase, 1f);
        AssertSame(rope, Packed(p, "rope_store", 1, n), Launchers.RopeKvStore.Size);

        var att = Launchers.Attention.Create(Buffer(p, "q", 4), Buffer(p, "k_cache", 2, 0), Buffer(p, "v_cache", 2, 0), positions, Buffer(p, "attn_out", 4),
            Buffer(p, "attn_part", 4), Buffer(p, "attn_sync", 4, 0), c.HeadCount, c.HeadCountKv, c.HeadDim, n, 1f / MathF.Sqrt(c.HeadDim));
        AssertSame(att, Packed(p, "attention", 0, n), Launchers.Attention.Size);
        Assert.Equal(att.Shape(), Launchers.ShapeOf(KernelId.Attention, Packed(p, "attention", 0, n)));

        // A float-weight plan launches no quantize (its GEMVs read f32 x); the quantized file's plan does.
        // (stories260K-Q8_0's ffn_down is F16, its 172 columns not a multiple of 32: act_quant is not launched there
        // either; its attn_output is Q8_0.)
        Assert.DoesNotContain(p.Instructions, i => i.OpName is "act_quant" or "attention_quantize");
        var pq = PlanFor("stories260K-Q8_0.gguf");
        Assert.DoesNotContain(pq.Instructions, i => i.OpName == "act_quant");
        var quant = Launchers.Quantize.Create(Buffer(pq, "attn_out", 4), Buffer(pq, "attn_outq", 1), pq.Config.EmbeddingLength, n);
        AssertSame(quant, Packed(pq, "attention_quantize", 1, n), Launchers.Quantize.Size);
        Assert.Equal(quant.Shape(), Launchers.ShapeOf(KernelId.Quantize, Packed(pq, "attention_quantize", 1, n)));

        var down = Launchers.GemvAdd_F32.Create(Tensor(p, "blk.0.ffn_down.weight", 1), Buffer(p, "ffn_act", 4), Buffer(p, "ffn_actq", 1),
            Buffer(p, "x", 4), Buffer(p, "mm_part", 4), Buffer(p, "mm_sync", 4, 0), c.EmbeddingLength, c.FeedForwardLength, n);
        AssertSame(down, Packed(p, "ffn_down", 0, n), Launchers.GemvAdd_F32.Size);

        var ffn = Launchers.GemvSwiGlu_F32.Create(Tensor(p, "blk.0.ffn_gate.weight", 1), Tensor(p, "blk.0.ffn_up.weight", 1), xn, xnq, Buffer(p, "ffn_act", 4),
            c.FeedForwardLength, c.EmbeddingLength, n);
        AssertSame(ffn, Packed(p, "ffn_gate_up", 0, n), Launchers.GemvSwiGlu_F32.Size);

        var embd = Launchers.Embedding_F32.Create(Tensor(p, "token_embd.weight", 1), Buffer(p, "tokens", 4), Buffer(p, "x", 4), c.EmbeddingLength, n);
        AssertSame(embd, Packed(p, "embed", -1, n), Launchers.Embedding_F32.Size);
    }

    /// <summary>The split-k workspace the CUDA backend reads from a launch's arguments (SplitK.WorkspaceOf): the o, down
    /// and q/k/v launches, whose batch kernels (gemm_add, gemm_qkv) take mm_part and mm_sync, hold n_embd / 16 partial
    /// tiles and give their columns; the launches whose batch kernels take no workspace (gate/up, the lm_head, the
    /// tiled attention) hold none, so they never split.</summary>
    [Fact]
    public void Only_the_launches_with_a_split_k_workspace_split()
    {
        var p = PlanFor("stories260K-pad256-Q8_0.gguf");
        var c = p.Config;
        foreach (var ins in p.Instructions.Where(i => i.Opcode == Opcode.Launch && i.HasBatchKernel))
        {
            var w = SplitK.WorkspaceOf(p, ins);
            string family = KernelTable.All[(int)ins.BatchKernelId].Family;
            if (family is "gemm_add" or "gemm_qkv")
            {
                Assert.Equal(c.EmbeddingLength / 16, w.Capacity);
                Assert.Equal(ins.OpName == "ffn_down" ? c.FeedForwardLength : c.EmbeddingLength, w.Cols);
            }
            else Assert.Equal(0, w.Capacity);
        }
        Assert.Contains(p.Instructions, i => i.HasBatchKernel && KernelTable.All[(int)i.BatchKernelId].Family == "gemm_add");
        Assert.Contains(p.Instructions, i => i.HasBatchKernel && KernelTable.All[(int)i.BatchKernelId].Family == "gemm_swiglu");
    }

    /// <summary>A prompt step that returns one row of logits runs the epilogue over that row alone (CudaModel): the final
    /// norm's and the lm_head's blocks for row 5 of a batch of 8 are their launcher structs with one token and every
    /// buffer view starting at row 5, one row long; the weights stay whole. Argmax and the layers' launches are not
    /// row launches.</summary>
    [Fact]
    public void Row_blocks_are_the_launchers_over_those_rows()
    {
        const int batch = 8, row = 5;
        var p = PlanFor("stories260K-Q8_0.gguf", batch: batch);
        var c = p.Config;
        DeviceView Row(string name, int elementBytes)
        {
            var all = Buffer(p, name, elementBytes);
            long perRow = all.Length / batch;
            return new DeviceView(all.Pointer + (ulong)(row * perRow * elementBytes), perRow);
        }
        byte[] Rows(string op)
        {
            var ins = p.Instructions.Single(i => i.OpName == op);
            Assert.True(ArgumentBlocks.CanPackRows(p, ins, batch));
            var block = new byte[ArgumentBlocks.Stride];
            ArgumentBlocks.PackRows(p, ins, Bases, row, 1, batch, block);
            return block;
        }

        var norm = Launchers.RmsNorm.Create(Row("x", 4), Tensor(p, "output_norm.weight", 4), Row("xn", 4), Row("xnq", 1), c.EmbeddingLength, 1, c.RmsEpsilon);
        AssertSame(norm, Rows("final_norm"), Launchers.RmsNorm.Size);
        var head = Launchers.Gemv_Q8_0.Create(Tensor(p, "output.weight", 1), Row("xn", 4), Row("xnq", 1), Row("logits", 4), c.VocabSize, c.EmbeddingLength, 1);
        AssertSame(head, Rows("lm_head"), Launchers.Gemv_Q8_0.Size);
        Assert.Equal(head.Shape(), Launchers.ShapeOf(KernelId.Gemv_Q8_0, Rows("lm_head")));

        Assert.False(ArgumentBlocks.CanPackRows(p, p.Instructions.Single(i => i.OpName == "next_token"), batch));
        Assert.False(ArgumentBlocks.CanPackRows(p, p.Instructions.Single(i => i.OpName == "attention" && i.Layer == 0), batch));
        Assert.True(ArgumentBlocks.CanPackRows(p, p.Instructions.Single(i => i.OpName == "attn_norm" && i.Layer == 0), batch));
        Assert.False(ArgumentBlocks.CanPackRows(p, p.Instructions.Single(i => i.OpName == "attn_norm" && i.Layer == 0), batch + 1));
    }

    [Theory]
    [InlineData("stories260K.gguf")]
    [InlineData("stories260K-pad256-Q4_K_M.gguf")]
    [InlineData("stories260K-Q8_0.gguf")]
    public void Plan_shapes_are_the_launchers_grid_rules_for_one_token_and_patching_changes_only_token_arguments(string model)
    {
        var p = PlanFor(model);
        Assert.Null(ArgumentBlocks.Verify(p));
        foreach (var ins in p.Instructions.Where(i => i.Opcode == Opcode.Launch))
        {
            var one = new byte[ArgumentBlocks.Stride];
            ArgumentBlocks.Pack(p, ins, Bases, 1, one);
            var s = Launchers.ShapeOf((KernelId)ins.KernelId, one);
            Assert.Equal((ins.Shape.GridX, ins.Shape.GridY, ins.Shape.GridZ, ins.Shape.BlockX), (s.GridX, s.GridY, s.GridZ, s.BlockX));
            var patched = (byte[])one.Clone();
            ArgumentBlocks.PatchTokens(ins, 5, patched);
            var five = new byte[ArgumentBlocks.Stride];
            ArgumentBlocks.Pack(p, ins, Bases, 5, five);
            Assert.Equal(five, patched);
        }
    }

    [Fact]
    public void A_plan_for_other_launchers_is_refused_in_one_line()
    {
        var p = PlanFor("stories260K.gguf");
        var k = p.Kernels[0];
        var wrongSize = p with { Kernels = p.Kernels.Select(x => x == k ? x with { ArgumentBytes = x.ArgumentBytes + 4 } : x).ToList() };
        string? why = ArgumentBlocks.Verify(wrongSize);
        Assert.NotNull(why);
        Assert.Contains(k.Entry, why);
        Assert.DoesNotContain('\n', why);
        var ins = p.Instructions.First(i => i.Opcode == Opcode.Launch);
        var fewer = p with { Instructions = p.Instructions.Select(i => i == ins ? i with { Args = i.Arguments[..^1] } : i).ToList() };
        Assert.Contains("arguments for the", ArgumentBlocks.Verify(fewer));
    }

    /// <summary>The matmuls of a quantized plan name the tiled GEMM as their batch kernel, which reads the same packed
    /// block: its launcher's grid for a prompt step tiles 128 rows × 64 tokens. Float weights have none (the GEMM has no
    /// float entries), and a batch kernel with another argument block is refused at load.</summary>
    [Fact]
    public void Quantized_matmuls_carry_a_batch_kernel_over_the_same_arguments()
    {
        var p = PlanFor("stories260K-pad256-Q4_K_M.gguf", batch: 64);
        Assert.Null(ArgumentBlocks.Verify(p));
        var launches = p.Instructions.Where(i => i.Opcode == Opcode.Launch).ToList();
        var matmuls = launches.Where(i => i.OpName is "qkv_proj" or "q_proj" or "k_proj" or "v_proj" or "o_proj" or "ffn_gate_up" or "ffn_down" or "lm_head").ToList();
        Assert.NotEmpty(matmuls);
        Assert.All(matmuls, i => Assert.True(i.HasBatchKernel, i.OpName));
        Assert.All(launches.Except(matmuls), i => Assert.False(i.HasBatchKernel, i.OpName));
        foreach (var ins in matmuls)
        {
            var batch = KernelTable.All[(int)ins.BatchKernelId];
            Assert.StartsWith("Gemm", batch.Name);
            Assert.Contains(p.Kernels, k => k.Id == ins.BatchKernelId);
            var block = new byte[ArgumentBlocks.Stride];
            ArgumentBlocks.Pack(p, ins, Bases, 60, block);
            int I32(string name) => BitConverter.ToInt32(block, KernelTable.All[(int)ins.KernelId].Params.Single(x => x.Name == name).Offset);
            int rows = I32("rows");
            // q, k and v in one launch: q's row tiles, then k's and v's; gate/up's tiles are 64 rows of each matrix.
            int tiles = ins.OpName switch
            {
                "qkv_proj" => (rows + 127) / 128 + 2 * ((I32("kv_dim") + 127) / 128),
                "ffn_gate_up" => (rows + 63) / 64,
                _ => (rows + 127) / 128,
            };
            var s = Launchers.ShapeOf((KernelId)ins.BatchKernelId, block);
            Assert.Equal(((uint)tiles, 1u, 256u), (s.GridX, s.GridY, s.BlockX));
        }
        Assert.All(PlanFor("stories260K.gguf").Instructions, i => Assert.False(i.HasBatchKernel));

        string? why = VerifyWithRmsNorm(p, matmuls[0], (i, other) => i with { BatchKernelId = other });
        Assert.NotNull(why);
        Assert.Contains("batch kernel RmsNorm", why);
        Assert.DoesNotContain('\n', why);
    }

    /// <summary>The attention of a plan whose head_dim suits it names the short kernel, which reads the same packed block
    /// with its own grid (8 groups a query head for a one-token step); a short kernel with another argument block is
    /// refused at load.</summary>
    [Fact]
    public void Attention_carries_a_short_kernel_over_the_same_arguments()
    {
        // The shared models have head_dim 8 (no short kernel): the synthesizer's tiny preset has 64.
        string dir = Path.Combine(Path.GetTempPath(), "engine-short-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        Plan p;
        try
        {
            string model = Path.Combine(dir, "tiny-Q4_K_M.gguf");
            Engine.Plans.Synth.ModelSynthesizer.Write(new Engine.Plans.Synth.SynthOptions(Engine.Plans.Synth.SynthPreset.Tiny,
                Engine.Plans.Synth.SynthType.Q4_K_M, model));
            p = Planner.Make(new PlanOptions { ModelPath = model, Hardware = HardwareProfiles.Resolve("h100-80g"), Ctx = 64, Batch = 8 },
                Engine.Graph.Generated.LlamaProgram.Program);
        }
        finally { Directory.Delete(dir, recursive: true); }
        Assert.Null(ArgumentBlocks.Verify(p));
        Assert.All(PlanFor("stories260K-pad256-Q4_K_M.gguf").Instructions, i => Assert.False(i.HasShortKernel));   // head_dim 8
        var launches = p.Instructions.Where(i => i.Opcode == Opcode.Launch).ToList();
        var attention = launches.Where(i => i.OpName == "attention").ToList();
        Assert.Equal(p.Config.LayerCount, attention.Count);
        Assert.All(launches.Except(attention), i => Assert.False(i.HasShortKernel, i.OpName));
        foreach (var ins in attention)
        {
            Assert.Equal("AttentionQuantShort", KernelTable.All[(int)ins.ShortKernelId].Name);
            Assert.Contains(p.Kernels, k => k.Id == ins.ShortKernelId);
            var block = new byte[ArgumentBlocks.Stride];
            ArgumentBlocks.Pack(p, ins, Bases, 1, block);
            var s = Launchers.ShapeOf((KernelId)ins.ShortKernelId, block);
            Assert.Equal(((uint)p.Config.HeadCount * 8, 1u, 256u), (s.GridX, s.GridY, s.BlockX));   // up to 8 ranges a head
        }

        string? why = VerifyWithRmsNorm(p, attention[0], (i, other) => i with { ShortKernelId = other });
        Assert.NotNull(why);
        Assert.Contains("short kernel RmsNorm", why);
        Assert.DoesNotContain('\n', why);
    }

    /// <summary>ArgumentBlocks.Verify of <paramref name="p"/> with <paramref name="target"/> pointing (through
    /// <paramref name="swap"/>) at RmsNorm, whose argument block is no launch kernel's, and RmsNorm in the kernel table.</summary>
    private static string? VerifyWithRmsNorm(Plan p, Instruction target, Func<Instruction, uint, Instruction> swap)
    {
        var other = (uint)KernelTable.All.Select((e, i) => (e, i)).First(x => x.e.Name == "RmsNorm").i;
        return ArgumentBlocks.Verify(p with
        {
            Instructions = p.Instructions.Select(i => i == target ? swap(i, other) : i).ToList(),
            Kernels = p.Kernels.Append(new KernelInfo(other, "rms_norm", PlanFormat.NoWeightType, "RmsNorm", (uint)KernelTable.All[(int)other].ArgumentBytes))
                .DistinctBy(k => k.Id).ToList(),
        });
    }
}
