using System.Collections.Concurrent;
using Engine.Plans;
using Engine.Plans.Cli;
using Engine.Plans.PlanFile;
using Engine.Tests;

namespace Engine.Runtime.Tests.EndToEnd;

/// <summary>Plans of the shared models for the cpu-only profile, made once per test run in a temporary folder the
/// way `ntc plan MODEL -o PLAN --hw cpu-only --ctx N [--batch B]` makes them (its argument parser, the planner, the recorded
/// model path), without ntc's console line so tests that capture the console stay unaffected.</summary>
internal static class TestPlans
{
    private static readonly string Folder = Directory.CreateTempSubdirectory("engine-ntrun-plans-").FullName;
    private static readonly ConcurrentDictionary<(string, int, int), Lazy<string>> Made = new();

    static TestPlans() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        try { Directory.Delete(Folder, true); } catch (IOException) { }
    };

    /// <summary>The plan of models/<paramref name="model"/>.gguf with a context of <paramref name="ctx"/> and passes of
    /// at most <paramref name="batch"/> tokens.</summary>
    public static string For(string model, int ctx = 128, int batch = 1) =>
        Made.GetOrAdd((model, ctx, batch), key => new Lazy<string>(() => Make(key.Item1, key.Item2, key.Item3))).Value;

    private static string Make(string model, int ctx, int batch) =>
        Make(RepoPaths.Model(model + ".gguf"), Path.Combine(Folder, $"{model}.ctx{ctx}.batch{batch}.plan"), "--hw", "cpu-only", "--ctx", ctx.ToString(),
            "--batch", batch.ToString());

    /// <summary>`ntc plan GGUF -o PLAN ARGS…` (for streamed plans: budgets, slots, a hardware file).</summary>
    public static string Make(string ggufPath, string planPath, params string[] args)
    {
        var (options, output) = PlanCommand.Parse([ggufPath, "-o", planPath, .. args]);
        var plan = Planner.Make(options, Engine.Graph.Generated.LlamaProgram.Program);
        PlanWriter.Write(PlanModelPath.Record(plan, options.ModelPath, output), output);
        return output;
    }

    /// <summary>A file in this run's temporary folder (hardware profiles, model copies).</summary>
    public static string TempFile(string name) => Path.Combine(Folder, name);

    public static LoadedPlan Load(string model, int ctx = 128, int threads = 2, int batch = 1) => LoadedPlan.Load(For(model, ctx, batch), threads: threads);
}
