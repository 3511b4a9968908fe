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
    public void A_gpu_plan_without_a_driver_is_refused_unless_the_cpu_backend_is_asked_for()
    {
        if (!NoDriver) return;
        string model = RepoPaths.Model("stories260K.gguf");
        string dir = Directory.CreateTempSubdirectory("ntrun-backend").FullName;
        try
        {
            string gpuPlan = Path.Combine(dir, "gpu.plan"), cpuPlan = Path.Combine(dir, "cpu.plan");
            PlanWriter.Write(PlanModelPath.Record(GpuPlan(model), model, gpuPlan), gpuPlan);
            var cpu = Planner.Make(new PlanOptions { ModelPath = model, Hardware = HardwareProfiles.Resolve("cpu-only"), Ctx = 64 },
                Engine.Graph.Generated.LlamaProgram.Program);
            PlanWriter.Write(PlanModelPath.Record(cpu, model, cpuPlan), cpuPlan);
            string[] common = ["--prompt-ids", "1 403 407", "-n", "8", "--temp", "0", "--ids", "-t", "2"];

            var (code, _, err) = Ntrun([gpuPlan, .. common]);
            Assert.Equal(1, code);
            Assert.StartsWith($"ntrun: {gpuPlan}: made for backend cuda, this machine runs cpu: re-plan with `ntc plan", err.Trim());
            Assert.Single(err.Trim().Split('\n'));

            var (code2, onCpu, err2) = Ntrun([gpuPlan, .. common, "--backend", "cpu"]);
            Assert.Equal(0, code2);
            var (code3, expected, _) = Ntrun([cpuPlan, .. common]);
            Assert.Equal(0, code3);
            Assert.Equal(expected, onCpu);
            Assert.DoesNotContain("cpu backend", err2);

            var (code4, _, err4) = Ntrun([gpuPlan, .. common, "--backend", "cuda"]);
            Assert.Equal(1, code4);
            Assert.Single(err4.Trim().Split('\n'));
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
