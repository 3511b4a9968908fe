using System.Globalization;
using Engine.Graph;
using Engine.Plans.Gguf;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Cli;

/// <summary><c>ntc plan MODEL.gguf [-o PLAN] [--hw auto|NAME|FILE.json] [--ctx N] [--vram-budget SIZE]
/// [--ram-budget SIZE] [--nvme DEVICE --lba BASE] [--slots N] [--batch N] [--activations int8|f32]</c></summary>
public static class PlanCommand
{
    public const string Usage = "usage: ntc plan MODEL.gguf [-o PLAN] [--hw auto|NAME|FILE.json] [--ctx N] [--vram-budget SIZE] [--ram-budget SIZE] [--nvme DEVICE --lba BASE] [--slots N] [--batch N] [--activations int8|f32]";

    public static int Run(string[] args) => Run(args, Engine.Graph.Generated.LlamaProgram.Program);

    public static int Run(string[] args, LayerProgram program)
    {
        try
        {
            var (options, output) = Parse(args);
            var plan = Planner.Make(options, program);
            PlanWriter.Write(PlanModelPath.Record(plan, options.ModelPath, output), output);
            var l = plan.Layers;
            Console.WriteLine($"{output}: {l.Count(x => x.Tier == Tier.A)} A + {l.Count(x => x.Tier == Tier.B)} B + {l.Count(x => x.Tier == Tier.C)} C layers, " +
                $"predicted {plan.Prediction.TokensPerSecond.ToString("0.00", CultureInfo.InvariantCulture)} tok/s");
            return 0;
        }
        catch (Exception e) when (e is PlanException or GgufException)
        {
            Console.Error.WriteLine("ntc plan: " + e.Message);
            return 1;
        }
    }

    public static (PlanOptions Options, string Output) Parse(string[] args)
    {
        string? model = null, output = null, hw = "auto", nvme = null;
        int? ctx = null; int slots = 2, batch = 1; long? vram = null, ram = null, lba = null;
        var activations = ActivationPrecision.Int8;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new PlanException($"{a}: missing value. {Usage}");
            switch (a)
            {
                case "-o": output = Value(); break;
                case "--hw": hw = Value(); break;
                case "--ctx": ctx = Int(a, Value()); break;
                case "--slots": slots = Int(a, Value()); break;
                case "--batch": batch = Int(a, Value()); break;
                case "--vram-budget": vram = Size(a, Value()); break;
                case "--ram-budget": ram = Size(a, Value()); break;
                case "--activations":
                    activations = Value() switch
                    {
                        "int8" => ActivationPrecision.Int8,
                        "f32" => ActivationPrecision.F32,
                        var v => throw new PlanException($"--activations {v}: must be int8 (8-bit matmul inputs, the default) or f32"),
                    };
                    break;
                case "--nvme": nvme = Value(); break;
                case "--lba": lba = long.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out long b) ? b : throw new PlanException($"--lba {args[i]}: must be a non-negative integer"); break;
                default:
                    if (a.StartsWith('-') || model != null) throw new PlanException($"{a}: unexpected argument. {Usage}");
                    model = a; break;
            }
        }
        if (model == null) throw new PlanException(Usage);
        if ((nvme == null) != (lba == null)) throw new PlanException("--nvme DEVICE and --lba BASE go together (the GGUF written to DEVICE from LBA BASE)");
        var profile = HardwareProfiles.Resolve(hw, model);
        output ??= Path.ChangeExtension(model, ".plan");
        return (new PlanOptions { ModelPath = model, Hardware = profile, Ctx = ctx, Slots = slots, Batch = batch, Activations = activations, VramBudget = vram, RamBudget = ram, NvmeDevice = nvme, LbaBase = lba ?? 0 }, output);
    }

    private static int Int(string flag, string v) =>
        int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int x) ? x : throw new PlanException($"{flag} {v}: must be a non-negative integer");

    private static long Size(string flag, string v) =>
        ByteSize.TryParse(v, out long b) ? b : throw new PlanException($"{flag} {v}: must be a size such as 32G or 512MiB");
}
