using Engine.Plans;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;
using Engine.Runtime.Streaming;
using Engine.Runtime.Tokenization;

namespace Engine.Runtime;

/// <summary>A plan ready to run, the runtime's entry point as a library: the plan loaded and checked against its
/// model file, this engine and this machine (<see cref="PlanReader.LoadFor"/>), the GGUF mapped, the weights bound
/// through the plan's tensor table, the tokenizer built from the plan's tokenizer section (the GGUF's metadata is
/// never parsed again), the plan's arenas in host memory with the streaming engine when layers stream
/// (<see cref="HostArenas"/>, <see cref="LayerStreamer"/>, docs/streaming.md), and the CPU model replaying the plan's
/// instruction stream over a workspace laid out by its buffer table (<see cref="CpuProgram"/>). Open sessions on it:
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

    /// <summary>"cpu, N threads" or "cuda", for logs and benchmark rows.</summary>
    public string BackendName => Model is CpuModel c ? $"cpu, {c.Threads} threads" : "cuda";
    /// <summary>The streaming engine, or null when every layer is resident.</summary>
    public LayerStreamer? Streamer { get; }
    /// <summary>The links of whichever streaming engine runs (the CPU's <see cref="LayerStreamer"/> or the CUDA
    /// backend's transfer stream), for <c>--benchmark</c>; null when every layer is resident.</summary>
    public IStreamingLinks? Links => (IStreamingLinks?)Streamer ?? (Model as Cuda.CudaModel)?.Streaming;
    private readonly MappedModelFile _file;
    private readonly HostArenas? _arenas;

    private LoadedPlan(Plan plan, string planPath, string modelPath, MappedModelFile file, HostArenas? arenas, LayerStreamer? streamer,
        Tokenizer tokenizer, ILanguageModel model)
    {
        (Plan, PlanPath, ModelPath, _file, _arenas, Streamer, Tokenizer, Model) = (plan, planPath, modelPath, file, arenas, streamer, tokenizer, model);
    }

    /// <summary>Loads <paramref name="planPath"/>. <paramref name="modelPath"/> overrides the GGUF the plan records;
    /// <paramref name="threads"/> 0 means every core; <paramref name="options"/> say how tier C is read and whether a
    /// plan made for a GPU may run here on the CPU backend. Any defect is one <see cref="PlanException"/>,
    /// <see cref="Plans.Gguf.GgufException"/> or <see cref="StreamingException"/> line.</summary>
    public static unsafe LoadedPlan Load(string planPath, string? modelPath = null, int threads = 0, PlanRunOptions? options = null)
    {
        options ??= new PlanRunOptions();
        var plan = PlanReader.LoadFor(planPath, modelPath, options.Backend == BackendKind.Cpu ? null : HardwareProbe.Probe(modelPath), EngineInfo.Build);
        modelPath ??= PlanModelPath.Resolve(plan, planPath)!;   // LoadFor refused a plan without one
        var file = MappedModelFile.Open(modelPath, plan.Fingerprints.ModelFileSize);
        HostArenas? arenas = null;
        LayerStreamer? streamer = null;
        try
        {
            var tokenizer = Tokenizer.Create(plan.Tokenizer);
            byte* map = file.Base;
            long length = file.Length;
            string path = modelPath;
            // The CPU backend emulates the plan's device: arenas in host memory, streamed layers through slots.
            var model = BackendSelector.Create(options.Backend, plan, planPath, modelPath, () =>
            {
                arenas = HostArenas.ForPlan(plan, map, length);
                var weights = CpuWeights.FromPlan(plan, map, path, t => (nint)arenas.KernelAddress(t, map));
                streamer = LayerStreamer.Start(plan, arenas, path, options.Streaming);
                return new CpuModel(plan, weights, new CpuModelOptions { Threads = threads > 0 ? threads : Environment.ProcessorCount }, streamer);
            }, options.Notices ?? Console.Error);
            if (model is not CpuModel && options.Streaming.From == StreamFrom.Mmap && plan.Layers.Any(l => l.Tier == Tier.C))
            {
                (model as IDisposable)?.Dispose();
                throw new PlanException($"--stream-from mmap: the CUDA backend reads tier-C layers with O_DIRECT only; the mmap baseline runs with --backend cpu");
            }
            return new LoadedPlan(plan, planPath, modelPath, file, arenas, streamer, tokenizer, model);
        }
        catch
        {
            streamer?.Dispose();
            arenas?.Dispose();
            file.Dispose();
            throw;
        }
    }

    /// <summary>The context length the plan reserved KV cache for.</summary>
    public int Context => Plan.Inputs.Ctx;

    public Session OpenSession(SamplerSettings sampling) => new(Model, sampling);

    public void Dispose()
    {
        Streamer?.Dispose();   // first: its copy thread writes into the arenas
        (Model as IDisposable)?.Dispose();
        _arenas?.Dispose();
        _file.Dispose();
    }
}

/// <summary>How <see cref="LoadedPlan.Load"/> runs a plan.</summary>
public sealed record PlanRunOptions
{
    /// <summary>How tier-C layers are read (<c>--stream-from</c>).</summary>
    public StreamingOptions Streaming { get; init; } = new();

    /// <summary><c>--backend</c>. <see cref="BackendKind.Cpu"/> runs any plan, one made for a GPU too, on the CPU
    /// backend, which emulates its device arena in host memory, so the plan's GPU need not be this machine's (the model
    /// and engine fingerprints are still checked). Otherwise a GPU plan must match this machine's GPU.</summary>
    public BackendKind Backend { get; init; } = BackendKind.Auto;

    /// <summary>Where the one-line notice goes when a GPU plan falls back to the CPU (stderr when null).</summary>
    public TextWriter? Notices { get; init; }
}
