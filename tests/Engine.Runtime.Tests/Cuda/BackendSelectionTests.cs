using System.Runtime.InteropServices;
using Engine.Plans;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cli;
using Engine.Runtime.Cpu;
using Engine.Runtime.Cuda;
using Engine.Tests;
using Xunit;

namespace Engine.Runtime.Tests.Cuda;

/// <summary>Backend choice on a machine without a CUDA driver (CI): TryOpen says why, auto falls back to the CPU with
/// one notice line, --backend cuda refuses in one line, ntrun with a GPU plan still runs on the CPU.</summary>
[Collection("Console")]
public sealed class BackendSelectionTests
{
    private static bool NoDriver => !NativeLibrary.TryLoad("libcuda.so.1", out _);

    private static Plan GpuPlan(string model) =>
        Planner.Make(new PlanOptions { ModelPath = model, Hardware = HardwareProfiles.Resolve("h100-80g"), Ctx = 64 },
            Engine.Graph.Generated.LlamaProgram.Program);

    [Fact]
    public void TryOpen_returns_null_with_a_reason_without_a_driver()
    {
        if (!NoDriver) return;   // a machine with a driver has nothing to show here
        Assert.Null(CudaContext.TryOpen(0, out string reason));
        Assert.Contains("libcuda.so.1", reason);
    }

    [Fact]
    public void Auto_falls_back_to_the_cpu_with_one_notice_and_cuda_refuses_in_one_line()
    {
        if (!NoDriver) return;
        string model = RepoPaths.Model("stories260K.gguf");
        var plan = GpuPlan(model);
        ILanguageModel Cpu() => new StubModel(plan);
        var notices = new StringWriter();
        var chosen = BackendSelector.Create(BackendKind.Auto, plan, "m.plan", model, Cpu, notices);
        Assert.IsType<StubModel>(chosen);
        var lines = notices.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["ntrun: using the cpu backend: libcuda.so.1 not found (no NVIDIA driver)"], lines);

        var e = Assert.Throws<CudaPlanException>(() => BackendSelector.Create(BackendKind.Cuda, plan, "m.plan", model, Cpu, notices));
        Assert.StartsWith("--backend cuda: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        var quiet = new StringWriter();
        BackendSelector.Create(BackendKind.Cpu, plan, "m.plan", model, Cpu, quiet);
        BackendSelector.Create(BackendKind.Auto, null, null, model, Cpu, quiet);
        Assert.Equal("", quiet.ToString());
    }

    [Fact]
    public void A_cpu_plan_has_no_ptx_and_says_so()
    {
        string model = RepoPaths.Model("stories260K.gguf");
        var plan = Planner.Make(new PlanOptions { ModelPath = model, Hardware = HardwareProfiles.Resolve("cpu-only"), Ctx = 64 },
            Engine.Graph.Generated.LlamaProgram.Program);
        Assert.Contains("carries no PTX", BackendSelector.CudaUnavailable(plan, out var cu));
        Assert.Null(cu);
    }

    [Fact]
    public void Ntrun_with_a_gpu_plan_runs_on_the_cpu_after_one_notice_line()
    {
        if (!NoDriver) return;
        string model = RepoPaths.Model("stories260K.gguf");
        string dir = Directory.CreateTempSubdirectory("ntrun-backend").FullName;
        try
        {
            string planPath = Path.Combine(dir, "m.plan");
            PlanWriter.Write(GpuPlan(model), planPath);
            string[] common = [model, "--prompt-ids", "1 403 407", "-n", "8", "--temp", "0", "--ids", "-t", "2"];
            var (code, output, err) = Ntrun([.. common, "--plan", planPath]);
            Assert.Equal(0, code);
            var notices = err.Split('\n').Where(l => l.Contains("cpu backend")).ToList();
            Assert.Equal(["ntrun: using the cpu backend: libcuda.so.1 not found (no NVIDIA driver)"], notices);
            var (code2, expected, _) = Ntrun(common);
            Assert.Equal(0, code2);
            Assert.Equal(expected, output);
            var (code3, _, err3) = Ntrun([.. common, "--plan", planPath, "--backend", "cuda"]);
            Assert.Equal(1, code3);
            Assert.Equal("ntrun: --backend cuda: libcuda.so.1 not found (no NVIDIA driver)", err3.Trim());
        }
        finally { Directory.Delete(dir, true); }
    }

    private static (int Code, string Out, string Err) Ntrun(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Program.Main(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(oldOut); Console.SetError(oldErr); }
    }

    private sealed class StubModel(Plan plan) : ILanguageModel, IDisposable
    {
        public Engine.Plans.Model.ModelConfig Config => plan.Config;
        public int MaxContext => 64;
        public void Forward(ReadOnlySpan<int> tokens, int startPos, Span<float> logits) => throw new NotSupportedException();
        public void Dispose() { }
    }
}
