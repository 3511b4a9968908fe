using Engine.Plans.Cli;
using Engine.Plans.Gguf;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Xunit;

namespace Engine.Plans.Tests.Planner;

/// <summary>Every refusal is one line, a non-zero exit and no output file (neither PLAN nor PLAN.part).</summary>
[Collection("console")]
public sealed class PlannerErrorTests
{
    private static (int Code, string Error) Ntc(params string[] args)
    {
        var err = new StringWriter();
        var oldErr = Console.Error; var oldOut = Console.Out;
        Console.SetError(err); Console.SetOut(new StringWriter());
        try { return (Program.Main(args), err.ToString()); }
        finally { Console.SetError(oldErr); Console.SetOut(oldOut); }
    }

    private static void AssertRefused(TempDir dir, string output, (int Code, string Error) r, string expected)
    {
        Assert.Equal(1, r.Code);
        Assert.Single(r.Error.TrimEnd('\n').Split('\n'));
        Assert.Contains(expected, r.Error);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.part"));
    }

    private static readonly LlamaShape Small = new("small", 4, 256, 512, 4, 2, 512, Tied: true);

    [Fact]
    public void Plan_succeeds_and_writes_the_file()
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, Small, "Q8_0"), plan = dir.File("m.plan");
        Assert.Equal(0, Ntc("plan", model, "-o", plan, "--hw", "cpu-only", "--ctx", "64").Code);
        Assert.True(File.Exists(plan));
        Assert.Equal(0, Ntc("explain", plan).Code);
        Assert.Equal(0, Ntc("explain", plan, "--json").Code);
    }

    [Fact]
    public void Model_that_fits_nowhere()
    {
        using var dir = new TempDir();
        // 16 layers of 2.25 MiB: 37 MiB resident; streaming needs 2 slots + 2 staging slots (9 MiB) and there is
        // room for that in 20 MiB, but cpu-only has no NVMe to stream from.
        string model = LlamaModels.Write(dir.Path, Small with { Layers = 16 }, "F32"), plan = dir.File("m.plan");
        var r = Ntc("plan", model, "-o", plan, "--hw", "cpu-only", "--ctx", "64", "--ram-budget", "20M");
        AssertRefused(dir, plan, r, "fits nowhere");
    }

    [Fact]
    public void Budget_too_small_for_one_streamed_layer_and_the_kv_cache()
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, Small, "F32"), plan = dir.File("m.plan");
        var r = Ntc("plan", model, "-o", plan, "--hw", "rtx3090-48g", "--ctx", "4096", "--vram-budget", "4M");
        AssertRefused(dir, plan, r, "budget too small for one streamed layer plus the KV cache (ctx 4096)");
    }

    [Fact]
    public void Unknown_architecture()
    {
        using var dir = new TempDir();
        string model = dir.File("gpt2.gguf"), plan = dir.File("m.plan");
        new GgufWriter().Set(GgufKeys.Architecture, "gpt2").Set(GgufKeys.BlockCount("gpt2"), 1u).WriteHeaderOnly(model);
        AssertRefused(dir, plan, Ntc("plan", model, "-o", plan, "--hw", "cpu-only"), "unsupported architecture");
    }

    [Fact]
    public void Tensor_type_without_a_kernel()
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, Small, "Q8_0", (role, layer) => role == "ffn_up" && layer == 2 ? GgmlType.BF16 : GgmlType.Q8_0), plan = dir.File("m.plan");
        AssertRefused(dir, plan, Ntc("plan", model, "-o", plan, "--hw", "cpu-only"), "tensor blk.2.ffn_up.weight: type BF16 has no kernel");
    }

    [Fact]
    public void Unreadable_nvme_device()
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, Small, "Q8_0"), plan = dir.File("m.plan");
        var r = Ntc("plan", model, "-o", plan, "--hw", "rtx3090-48g", "--nvme", dir.File("no-such-nvme"), "--lba", "0");
        AssertRefused(dir, plan, r, "--nvme");
    }

    [Fact]
    public void Unknown_profile_and_bad_sizes()
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, Small, "Q8_0"), plan = dir.File("m.plan");
        AssertRefused(dir, plan, Ntc("plan", model, "-o", plan, "--hw", "rtx9090"), "unknown profile");
        AssertRefused(dir, plan, Ntc("plan", model, "-o", plan, "--hw", "cpu-only", "--ram-budget", "lots"), "--ram-budget lots");
        AssertRefused(dir, plan, Ntc("plan", model, "-o", plan, "--hw", "cpu-only", "--nvme", "/dev/null"), "--nvme DEVICE and --lba BASE go together");
        AssertRefused(dir, plan, Ntc("plan", model, "-o", plan, "--hw", "cpu-only", "--activations", "f16"), "--activations f16: must be int8");
    }

    [Fact]
    public void Plan_for_another_model_engine_or_gpu_is_refused_with_the_fix()
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, Small, "Q8_0"), planPath = dir.File("m.plan");
        Assert.Equal(0, Ntc("plan", model, "-o", planPath, "--hw", "rtx3090-48g", "--ctx", "128").Code);
        var plan = PlanReader.Load(planPath);
        PlanCheck.AgainstModel(plan, model, planPath);
        PlanCheck.AgainstHardware(plan, HardwareProfiles.Resolve("rtx3090-48g"), planPath);
        PlanCheck.AgainstEngine(plan, EngineInfo.Build, planPath);
        Assert.Equal(PlanWriter.ToBytes(plan), PlanWriter.ToBytes(PlanReader.LoadFor(planPath, model, HardwareProfiles.Resolve("rtx3090-48g"), EngineInfo.Build)));

        var e = Assert.Throws<PlanException>(() => PlanCheck.AgainstHardware(plan, HardwareProfiles.Resolve("h100-80g"), planPath));
        Assert.Contains("GPU \"NVIDIA GeForce RTX 3090\", this machine has \"NVIDIA H100 80GB HBM3\"", e.Message);
        Assert.Contains("ntc plan", e.Message);
        e = Assert.Throws<PlanException>(() => PlanCheck.AgainstEngine(plan, "9.9.9", planPath));
        Assert.Contains("engine", e.Message);
        // Same size, different header: another quantisation of the same shape is a different model.
        LlamaModels.Write(dir.Path, Small with { Name = "smalm" }, "Q8_0");
        string other = Path.Combine(dir.Path, "smalm-Q8_0.gguf");
        e = Assert.Throws<PlanException>(() => PlanCheck.AgainstModel(plan, other, planPath));
        Assert.Contains($"ntc plan {other} -o {planPath} --hw rtx3090-48g --ctx 128", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Plan_records_the_model_path_relative_to_itself_and_a_missing_model_is_one_line()
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, Small, "Q8_0");
        Directory.CreateDirectory(dir.File("plans"));
        string planPath = dir.File("plans/m.plan");
        Assert.Equal(0, Ntc("plan", model, "-o", planPath, "--hw", "cpu-only", "--ctx", "64").Code);
        var cpu = HardwareProfiles.Resolve("cpu-only");
        var plan = PlanReader.LoadFor(planPath, null, cpu, EngineInfo.Build);
        Assert.Equal("../" + Path.GetFileName(model), plan.Fingerprints.ModelPath);
        Assert.Equal(Path.GetFullPath(model), PlanModelPath.Resolve(plan, planPath));
        // A cpu plan runs on any machine: the CPU backend is everywhere.
        PlanCheck.AgainstHardware(plan, HardwareProfiles.Resolve("h100-80g"), planPath);
        File.Move(model, model + ".moved");
        AssertOneLine(() => PlanReader.LoadFor(planPath, null, cpu, EngineInfo.Build), "is missing: give --model PATH");
        Assert.NotNull(PlanReader.LoadFor(planPath, model + ".moved", cpu, EngineInfo.Build));
    }

    [Fact]
    public void Corrupt_plans_are_refused_in_one_line()
    {
        using var dir = new TempDir();
        string model = LlamaModels.Write(dir.Path, Small, "Q8_0"), planPath = dir.File("m.plan");
        Assert.Equal(0, Ntc("plan", model, "-o", planPath, "--hw", "cpu-only", "--ctx", "64").Code);
        var good = File.ReadAllBytes(planPath);
        var truncated = good[..(good.Length - 4096)];
        AssertOneLine(() => PlanReader.Parse(truncated, "t.plan"), "t.plan");
        var badMagic = (byte[])good.Clone(); badMagic[0] = (byte)'X';
        AssertOneLine(() => PlanReader.Parse(badMagic, "m.plan"), "not a plan file");
        var badVersion = (byte[])good.Clone(); badVersion[8] = 7;
        AssertOneLine(() => PlanReader.Parse(badVersion, "m.plan"), "plan format 7");
        // Move a tensor's device offset outside the device arena.
        var plan = PlanReader.Parse(good, "m.plan");
        var t0 = plan.Tensors[0];
        var broken = plan with { Tensors = plan.Tensors.Select((t, i) => i == 0 ? t with { DeviceOffset = plan.Arenas[0].Size } : t).ToList() };
        AssertOneLine(() => PlanReader.Parse(PlanWriter.ToBytes(broken), "m.plan"), $"tensor {t0.Name}.device");
        var badArg = plan with { Instructions = plan.Instructions.Select((x, i) => x.Opcode == Opcode.Launch && i == plan.Instructions.Count - 1
            ? x with { Args = [new KernelArg(ArgKind.Buffer, 9999)] } : x).ToList() };
        AssertOneLine(() => PlanReader.Parse(PlanWriter.ToBytes(badArg), "m.plan"), "buffer index");
        AssertRefused(dir, dir.File("none"), Ntc("explain", dir.File("missing.plan")), "cannot read the plan");
    }

    private static void AssertOneLine(Action a, string expected)
    {
        var e = Assert.Throws<PlanException>(a);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
