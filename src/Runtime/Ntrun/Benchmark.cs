using System.Diagnostics;
using Engine.Plans.Gguf;
using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;

namespace Engine.Runtime.Cli;

/// <summary>llama-bench-style speed rows: pp (a prompt of random ids in batched passes) and tg (tokens generated
/// one at a time from an empty context), each the mean ± sd of --repetitions runs after one warm-up.</summary>
internal static class Benchmark
{
    public static int Run(ILanguageModel model, NtrunOptions o, GgufFile file)
    {
        int promptLength = o.PromptIds?.Length ?? 128;
        var rng = new Xoshiro256StarStar(1234);
        var prompt = new int[promptLength];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = (int)(rng.NextUInt64() % (ulong)model.Config.VocabSize);
        var logits = new float[model.Config.VocabSize];
        string name = Path.GetFileName(file.Path);
        double sizeMiB = file.FileSize / (1024.0 * 1024.0);
        Console.WriteLine("| model | size | backend | threads | test | t/s |");
        Console.WriteLine("| --- | ---: | --- | ---: | ---: | ---: |");

        double Pp()
        {
            var sw = Stopwatch.StartNew();
            model.Forward(prompt, 0, logits);
            return prompt.Length / sw.Elapsed.TotalSeconds;
        }
        double Tg()
        {
            int token = prompt[0];
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < o.Predict; i++)
            {
                model.Forward([token], i, logits);
                token = Sampler.ArgMax(logits);
            }
            return o.Predict / sw.Elapsed.TotalSeconds;
        }
        Row($"pp{promptLength}", Pp);
        if (o.Predict > 0) Row($"tg{o.Predict}", Tg);
        return 0;

        void Row(string test, Func<double> measure)
        {
            measure();   // warm-up
            var rates = new double[o.BenchmarkRepetitions];
            for (int r = 0; r < rates.Length; r++) rates[r] = measure();
            double mean = rates.Average();
            double sd = rates.Length > 1 ? Math.Sqrt(rates.Sum(x => (x - mean) * (x - mean)) / (rates.Length - 1)) : 0;
            Console.WriteLine($"| {name} | {sizeMiB:F2} MiB | {(model is CpuModel ? "CPU" : "CUDA")} | {(model is CpuModel c ? c.Threads.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-")} | {test} | {mean:F2} ± {sd:F2} |");
        }
    }
}
