using Engine.Plans.Cli;
using Engine.Plans.Gguf;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Planner;

/// <summary>The shared real models (llama.cpp-written layouts, tokenizers, F16/Q4_0/K-quant mixes) plan soundly on
/// every profile, resident and with budgets that force streaming through both links.</summary>
public sealed class PlannerRealModelTests
{
    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (var m in new[] { "stories260K.gguf", "stories260K-Q4_0.gguf", "stories260K-pad256-Q4_K_M.gguf", "stories260K-pad256-Q6_K.gguf", "llama-2-tiny-random.gguf" })
            foreach (var hw in new[] { "cpu-only", "rtx3090-48g", "h100-80g" })
                d.Add(m, hw);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Real_models_plan_soundly(string model, string hw)
    {
        string path = RepoPaths.Model(model);
        var profile = HardwareProfiles.Resolve(hw);
        var o = new PlanOptions { ModelPath = path, Hardware = profile, Ctx = 64, EngineVersion = "0.1.0" };
        var resident = Engine.Plans.Planner.Make(o, Engine.Graph.Generated.LlamaProgram.Program);
        Assert.All(resident.Layers, l => Assert.Equal(Tier.A, l.Tier));
        using var gguf = GgufFile.Open(path);
        PlannerPropertyTests.CheckInvariants(resident, gguf, o);
        Assert.Equal(resident.Tokenizer.Tokens.Length, PlanReader.Parse(PlanWriter.ToBytes(resident), model).Tokenizer.Tokens.Length);

        // Squeeze: one byte less than all layers resident, so something must stream (a one-layer model whose 8 KiB
        // image is larger than its tensors cannot: streaming would need more memory than keeping it).
        if (resident.Layers.Count < 2) return;
        long layer = resident.Layers.Max(l => l.ImageSize);
        long packed = resident.Tensors.Where(t => t.Layer >= 0).Sum(t => (t.Size + 255) / 256 * 256);
        long fixedDevice = resident.Arenas[Arenas.Device].Size - resident.Tensors.Where(t => t.Layer >= 0).Sum(t => (t.Size + 255) / 256 * 256);
        var squeezed = profile.IsCpu
            ? o with { Hardware = profile with { Nvme = new NvmeProfile(3e9, 4096, 64 << 10) }, RamBudget = fixedDevice + packed - 1 }
            : o with { VramBudget = fixedDevice + packed - 1, RamBudget = resident.Arenas[Arenas.Pinned].Size + 2 * layer + layer / 2 };
        var plan = Engine.Plans.Planner.Make(squeezed, Engine.Graph.Generated.LlamaProgram.Program);
        Assert.Contains(plan.Layers, l => l.Tier != Tier.A);
        PlannerPropertyTests.CheckInvariants(plan, gguf, squeezed);
        Assert.Equal(PlanWriter.ToBytes(plan), PlanWriter.ToBytes(PlanReader.Parse(PlanWriter.ToBytes(plan), model)));
    }
}
