using System.Globalization;
using Engine.Plans.Gguf;
using Engine.Plans.Synth;

namespace Engine.Plans.Cli;

/// <summary><c>ntc synth</c>: a Llama GGUF of real shapes and random weights (see <see cref="ModelSynthesizer"/>).</summary>
public static class SynthCommand
{
    public const string Usage =
        "usage: ntc synth --preset tiny|llama3-1b|llama3-8b|llama3-70b --type F16|Q8_0|Q4_0|Q4_K_M|Q5_K_M|Q6_K " +
        "[--layers N] [--vocab-from VOCAB.gguf] [--header-only] [--seed S] [--threads T] -o OUT.gguf";

    /// <summary>Runs the command; <paramref name="args"/> are the arguments after "synth". Returns the exit
    /// code: 0 done, 2 bad arguments, 1 the file could not be written.</summary>
    public static int Run(string[] args)
    {
        string? preset = null, type = null, output = null, vocabFrom = null;
        int? layers = null, threads = null;
        ulong seed = 1;
        bool headerOnly = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a is "-h" or "--help") { Console.Out.WriteLine(Usage); return 0; }
            if (a == "--header-only") { headerOnly = true; continue; }
            if (i + 1 >= args.Length) return Fail($"{a}: missing value\n{Usage}");
            string v = args[++i];
            switch (a)
            {
                case "--preset": preset = v; break;
                case "--type": type = v; break;
                case "-o" or "--output": output = v; break;
                case "--vocab-from": vocabFrom = v; break;
                case "--layers":
                    if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int l) || l < 1) return Fail($"--layers: \"{v}\" is not a positive integer");
                    layers = l; break;
                case "--threads":
                    if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int t) || t < 1) return Fail($"--threads: \"{v}\" is not a positive integer");
                    threads = t; break;
                case "--seed":
                    if (!ulong.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out seed)) return Fail($"--seed: \"{v}\" is not a non-negative integer");
                    break;
                default: return Fail($"unknown option \"{a}\"\n{Usage}");
            }
        }
        if (preset == null) return Fail("--preset is required (tiny|llama3-1b|llama3-8b|llama3-70b)");
        var p = SynthPreset.Find(preset);
        if (p == null) return Fail($"--preset: unknown preset \"{preset}\" (known: {string.Join(", ", SynthPreset.All.Select(x => x.Name))})");
        if (type == null) return Fail($"--type is required ({string.Join("|", TensorTypeRules.Names)})");
        var st = TensorTypeRules.Parse(type);
        if (st == null) return Fail($"--type: unknown type \"{type}\" (known: {string.Join(", ", TensorTypeRules.Names)})");
        if (output == null) return Fail("-o OUT.gguf is required");
        if (layers > p.LayerCount) return Fail($"--layers: {layers} exceeds the {p.LayerCount} layers of {p.Name}");
        if (vocabFrom != null && !File.Exists(vocabFrom)) return Fail($"--vocab-from: {vocabFrom}: no such file");
        string? dir = Path.GetDirectoryName(Path.GetFullPath(output));
        if (dir != null && !Directory.Exists(dir)) return Fail($"-o: {output}: directory {dir} does not exist", 1);

        var options = new SynthOptions(p, st.Value, output)
        {
            Layers = layers, VocabFrom = vocabFrom, HeaderOnly = headerOnly, Seed = seed, Threads = threads,
        };
        try
        {
            ModelSynthesizer.Write(options, Console.Error);
            return 0;
        }
        catch (GgufException e)
        {
            return Fail(e.Message, 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail($"cannot write {output}: {e.Message}", 1);
        }
    }

    private static int Fail(string message, int code = 2)
    {
        Console.Error.WriteLine("ntc synth: " + message);
        return code;
    }
}
