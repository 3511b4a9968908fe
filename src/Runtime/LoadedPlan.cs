using Engine.Plans;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;
using Engine.Runtime.Tokenization;

namespace Engine.Runtime;

/// <summary>A plan ready to run, the runtime's entry point as a library: the plan loaded and checked against its
/// model file, this engine and this machine (<see cref="PlanReader.LoadFor"/>), the GGUF mapped, the weights bound
/// through the plan's tensor table, the tokenizer built from the plan's tokenizer section (the GGUF's metadata is
/// never parsed again), and the CPU model sized by the plan's inputs (n_ctx, n_batch). Open sessions on it:
/// <c>using var p = LoadedPlan.Load("m.plan"); var s = p.OpenSession(new SamplerSettings { Temperature = 0 });</c></summary>
public sealed class LoadedPlan : IDisposable
{
    public Plan Plan { get; }
    public string PlanPath { get; }
    /// <summary>The GGUF in use: the override given to <see cref="Load"/>, or the path the plan records.</summary>
    public string ModelPath { get; }
    public Tokenizer Tokenizer { get; }
    /// <summary>The backend running the plan: <see cref="CpuModel"/> or <see cref="Cuda.CudaModel"/>.</summary>
    public ILanguageModel Model { get; }

    /// <summary>"cpu, N threads" or "cuda, GPU name", for logs and benchmark rows.</summary>
    public string BackendName => Model is CpuModel c ? $"cpu, {c.Threads} threads" : "cuda";
    private readonly MappedModelFile _file;

    private LoadedPlan(Plan plan, string planPath, string modelPath, MappedModelFile file, Tokenizer tokenizer, ILanguageModel model)
    {
        (Plan, PlanPath, ModelPath, _file, Tokenizer, Model) = (plan, planPath, modelPath, file, tokenizer, model);
    }

    /// <summary>Loads <paramref name="planPath"/>. <paramref name="modelPath"/> overrides the GGUF the plan records;
    /// <paramref name="threads"/> 0 means every core. Any defect is one <see cref="PlanException"/> or
    /// <see cref="Plans.Gguf.GgufException"/> line.</summary>
    public static unsafe LoadedPlan Load(string planPath, string? modelPath = null, int threads = 0,
        BackendKind backend = BackendKind.Auto, TextWriter? notices = null)
    {
        var plan = PlanReader.LoadFor(planPath, modelPath, backend == BackendKind.Cpu ? null : HardwareProbe.Probe(modelPath), EngineInfo.Version);
        modelPath ??= PlanModelPath.Resolve(plan, planPath)!;   // LoadFor refused a plan without one
        var file = MappedModelFile.Open(modelPath, plan.Fingerprints.ModelFileSize);
        try
        {
            var tokenizer = Tokenizer.Create(plan.Tokenizer);
            byte* mapped = file.Base;
            string path = modelPath;
            var model = BackendSelector.Create(backend, plan, planPath, modelPath, () => new CpuModel(plan.Config,
                CpuWeights.FromPlan(plan, mapped, path), new CpuModelOptions
                {
                    MaxContext = plan.Inputs.Ctx,
                    MaxBatch = Math.Max(1, plan.Inputs.Batch),
                    Threads = threads > 0 ? threads : Environment.ProcessorCount,
                }), notices ?? Console.Error);
            return new LoadedPlan(plan, planPath, modelPath, file, tokenizer, model);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The context length the plan reserved KV cache for.</summary>
    public int Context => Plan.Inputs.Ctx;

    public Session OpenSession(SamplerSettings sampling) => new(Model, sampling);

    public void Dispose()
    {
        (Model as IDisposable)?.Dispose();
        _file.Dispose();
    }
}
