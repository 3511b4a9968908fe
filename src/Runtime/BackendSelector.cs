using Engine.Plans.PlanFile;
using Engine.Runtime.Cpu;
using Engine.Runtime.Cuda;

namespace Engine.Runtime;

public enum BackendKind { Auto, Cpu, Cuda }

/// <summary>Which backend runs a plan (<c>ntrun --backend cpu|cuda</c>; default auto): CUDA when a plan is given,
/// it carries PTX, the driver opens a GPU and the plan's PTX targets that GPU's architecture; otherwise the CPU
/// backend, after one notice line saying why. <c>--backend cuda</c> turns every such reason into an error.</summary>
public static class BackendSelector
{
    public static BackendKind Parse(string value) => value switch
    {
        "auto" => BackendKind.Auto,
        "cpu" => BackendKind.Cpu,
        "cuda" => BackendKind.Cuda,
        _ => throw new ArgumentException($"--backend {value}: must be cpu, cuda or auto"),
    };

    /// <summary>Why the CUDA backend cannot run <paramref name="plan"/> here, or null with an open context.</summary>
    public static string? CudaUnavailable(Plan? plan, out CudaContext? context)
    {
        context = null;
        if (plan is null) return "no plan given (ntc plan MODEL --hw auto makes one for this GPU)";
        if (plan.Ptx.Count == 0) return $"the plan carries no PTX (made for {plan.Fingerprints.HwProfile}, backend {plan.Fingerprints.HwBackend})";
        var cu = CudaContext.TryOpen(0, out string reason);
        if (cu is null) return reason;
        string? arch = Engine.Kernels.Ptx.PtxModules.ArchitectureFor(cu.Sm / 10, cu.Sm % 10);
        int sm = arch is null ? -1 : int.Parse(arch.AsSpan(3), System.Globalization.CultureInfo.InvariantCulture);
        if (!plan.Ptx.Any(m => m.Sm == sm))
        {
            string why = $"the plan's PTX is for sm_{plan.Ptx[0].Sm}, this GPU ({cu.Name}) is sm_{cu.Sm}";
            cu.Dispose();
            return why;
        }
        context = cu;
        return null;
    }

    /// <summary>The model for <paramref name="kind"/>: <paramref name="cpu"/>() for the CPU backend, a
    /// <see cref="CudaModel"/> of the plan otherwise. Auto falls back to the CPU with one line on
    /// <paramref name="notices"/> (nothing is printed when no plan was given: there was no choice to make); Cuda
    /// throws <see cref="CudaPlanException"/> with the reason.
    /// The plan's hardware fingerprint is checked (<see cref="PlanCheck.AgainstHardware"/>) only when CUDA runs it:
    /// the CPU backend emulates any plan's device in host memory and replays its instruction stream there.</summary>
    public static ILanguageModel Create(BackendKind kind, Plan? plan, string? planPath, string modelPath, Func<ILanguageModel> cpu, TextWriter notices)
    {
        if (kind == BackendKind.Cpu) return cpu();
        string? why = CudaUnavailable(plan, out var cu);
        if (why == null)
        {
            try
            {
                PlanCheck.AgainstHardware(plan!, Engine.Plans.Hardware.HardwareProbe.Probe(modelPath), planPath ?? "the plan");
                var model = CudaModel.Load(cu!, plan!, modelPath, ownsContext: true);
                if (model.SkippedLaunches > 0)
                    notices.WriteLine($"ntrun: {CudaModel.SkipVariable} leaves {model.SkippedLaunches} launches out of every step: the outputs are wrong (a measurement knob)");
                return model;
            }
            catch (CudaPlanException e) when (kind == BackendKind.Auto) { cu!.Dispose(); why = e.Message; }
            catch { cu!.Dispose(); throw; }
        }
        if (kind == BackendKind.Cuda) throw new CudaPlanException("--backend cuda: " + why);
        if (plan != null && plan.Fingerprints.HwBackend != "cpu") notices.WriteLine("ntrun: using the cpu backend: " + why);
        return cpu();
    }
}
