using Engine.Plans.Cli;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Planner;

/// <summary>`ntc explain` snapshots for model shapes × hardware profiles, from header-only GGUFs written here.
/// Each also round-trips the plan through the file format and checks the explain of the loaded plan is the same.</summary>
public sealed class PlannerExplainTests
{
    internal static (Plan Plan, string Explain) PlanAndExplain(LlamaShape shape, string fileType, string hw, int ctx,
        long? vramBudget = null, long? ramBudget = null, Action<TempDir, PlanOptions>? check = null, string? nvme = null, long lba = 0,
        ActivationPrecision activations = ActivationPrecision.Int8)
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, shape, fileType);
        var options = new PlanOptions
        {
            ModelPath = model, Hardware = HardwareProfiles.Resolve(hw), Ctx = ctx, VramBudget = vramBudget, RamBudget = ramBudget,
            NvmeDevice = nvme, LbaBase = lba, EngineVersion = "0.1.0", Activations = activations,
        };
        var plan = Engine.Plans.Planner.Make(options, Engine.Graph.Generated.LlamaProgram.Program);
        string planPath = dir.File("model.plan");
        PlanWriter.Write(plan, planPath);
        var loaded = PlanReader.Load(planPath);
        string text = PlanExplainer.Text(plan);
        Assert.Equal(text, PlanExplainer.Text(loaded));
        Assert.Equal(PlanWriter.ToBytes(plan), PlanWriter.ToBytes(loaded));
        PlanCheck.AgainstModel(loaded, model, planPath);
        check?.Invoke(dir, options);
        return (plan, text);
    }

    private static (int A, int B, int C) Tiers(Plan p) =>
        (p.Layers.Count(l => l.Tier == Tier.A), p.Layers.Count(l => l.Tier == Tier.B), p.Layers.Count(l => l.Tier == Tier.C));

    [Fact]
    public void Llama8B_Q8_0_rtx3090_all_resident()
    {
        var (plan, text) = PlanAndExplain(LlamaShape.Llama8B, "Q8_0", "rtx3090-48g", 4096);
        Assert.Equal((32, 0, 0), Tiers(plan));
        Snapshot.Verify(text);
    }

    [Fact]
    public void Llama70B_Q6_K_rtx3090_ctx512()
    {
        var (plan, text) = PlanAndExplain(LlamaShape.Llama70B, "Q6_K", "rtx3090-48g", 512);
        var (a, b, c) = Tiers(plan);
        Assert.InRange(a, 26, 32);   // the seed: 29 A + 51 B + 0 C
        Assert.Equal(0, c);
        Snapshot.Verify(text);
    }

    [Fact]
    public void Llama70B_Q6_K_rtx3090_ctx4096()
    {
        var (plan, text) = PlanAndExplain(LlamaShape.Llama70B, "Q6_K", "rtx3090-48g", 4096);
        var (a, b, c) = Tiers(plan);
        Assert.InRange(a, 24, 31);   // the seed: 24 A + 54 B + 2 C with an f32 KV cache; ours is f16 (2.5 GiB less)
        Assert.InRange(c, 0, 5);
        Snapshot.Verify(text);
    }

    [Fact]
    public void Llama70B_Q4_K_M_rtx3090_ram32G()
    {
        // The issue expected tier C here; by this planner's arithmetic a 70B Q4_K_M (40 GiB of layers) fits
        // 22.8 GiB VRAM + 32 GiB pinned RAM, so nothing streams from NVMe: the snapshot shows the sums.
        var (plan, text) = PlanAndExplain(LlamaShape.Llama70B, "Q4_K_M", "rtx3090-48g", 4096, ramBudget: 32L << 30);
        // attn_v is Q5_K (Q6_K in the use_more_bits layers) beside Q4_K q and k: the pairs' fused q/k/v.
        Assert.Contains(plan.Kernels, k => k.Entry == "GemvQkv_Q4_K_Q5_K");
        Assert.Contains(plan.Kernels, k => k.Entry == "GemvQkv_Q4_K_Q6_K");
        Assert.Contains(plan.Kernels, k => k.Entry == "Gemv_Q6_K");
        Snapshot.Verify(text);
    }

    [Fact]
    public void Llama70B_Q4_K_M_rtx3090_ram12G_streams_from_nvme()
    {
        var (plan, text) = PlanAndExplain(LlamaShape.Llama70B, "Q4_K_M", "rtx3090-48g", 4096, ramBudget: 12L << 30);
        Assert.True(Tiers(plan).C > 0);
        Assert.NotEmpty(plan.IoCommands);
        Snapshot.Verify(text);
    }

    [Fact]
    public void Llama70B_Q4_K_M_rtx3090_ram12G_raw_device_lbas()
    {
        // --nvme with a regular file standing in for the device: LBAs count from BASE in 4096-byte blocks.
        using var dir = new TempDir();
        string dev = dir.File("fake-nvme");
        File.WriteAllBytes(dev, new byte[4096]);
        var (plan, text) = PlanAndExplain(LlamaShape.Llama70B, "Q4_K_M", "rtx3090-48g", 4096, ramBudget: 12L << 30, nvme: dev, lba: 2048);
        Assert.Equal(NvmeMode.Device, plan.Inputs.NvmeMode);
        var first = plan.Layers.First(l => l.Tier == Tier.C);
        Assert.Equal(2048 + first.ImageFileOffset / 4096, plan.IoCommands[first.IoFirst].Lba);
        Snapshot.Verify(text.Replace(dev, "FAKE-NVME"));
    }

    [Fact]
    public void Llama8B_Q8_0_h100()
    {
        var (plan, text) = PlanAndExplain(LlamaShape.Llama8B, "Q8_0", "h100-80g", 8192);
        Assert.Equal((32, 0, 0), Tiers(plan));
        Snapshot.Verify(text);
    }

    /// <summary>The exact mode (--activations f32): f32act GEMVs, no batch GEMM, no quantize launches.</summary>
    [Fact]
    public void Llama8B_Q4_K_M_h100_f32_activations()
    {
        var (plan, text) = PlanAndExplain(LlamaShape.Llama8B, "Q4_K_M", "h100-80g", 8192, activations: ActivationPrecision.F32);
        Assert.Equal((32, 0, 0), Tiers(plan));
        Snapshot.Verify(text);
    }

    [Fact]
    public void Tiny_F32_cpu_only()
    {
        var (plan, text) = PlanAndExplain(LlamaShape.Tiny, "F32", "cpu-only", 256);
        Assert.Equal((2, 0, 0), Tiers(plan));
        Assert.Equal(ArenaKind.HostAsDevice, plan.Arenas[Arenas.Device].Kind);
        Snapshot.Verify(text);
    }

    [Fact]
    public void Llama70B_Q6_K_rtx3090_json_is_deterministic()
    {
        var (plan, _) = PlanAndExplain(LlamaShape.Llama70B, "Q6_K", "rtx3090-48g", 512);
        var (plan2, _) = PlanAndExplain(LlamaShape.Llama70B, "Q6_K", "rtx3090-48g", 512);
        Assert.Equal(PlanExplainer.Json(plan), PlanExplainer.Json(plan2));
        Assert.Equal(PlanWriter.ToBytes(plan), PlanWriter.ToBytes(plan2));
    }
}
