using System.Diagnostics;
using System.Globalization;
using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;

namespace Engine.Runtime.Cli;

/// <summary>llama-bench-style speed rows: pp (a prompt of random ids, in the plan's batches) and tg (tokens generated
/// one at a time from an empty context), each the mean ± sd of --repetitions runs after one warm-up, beside the
/// plan's predicted tokens/s (its prediction section: a token's bytes over the bandwidths the planner assumed).
/// The plan predicts a decode step; a prompt runs n_batch tokens per step, so its prediction is that rate × n_batch
/// (an upper bound: it ignores that a batch reads each weight once).</summary>
internal static class Benchmark
{
    public static int Run(LoadedPlan loaded, NtrunOptions o)
    {
        var model = loaded.Model;
        int promptLength = o.PromptIds?.Length ?? Math.Min(128, loaded.Context);
        if (o.Predict > loaded.Context)
            throw new UsageException($"-n {o.Predict}: more than the context of {loaded.Context} in {o.PlanPath}");
        var rng = new Xoshiro256StarStar(1234);
        var prompt = new int[promptLength];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = (int)(rng.NextUInt64() % (ulong)model.Config.VocabSize);
        var logits = new float[model.Config.VocabSize];
        string name = Path.GetFileName(loaded.ModelPath);
        double sizeMiB = loaded.Plan.Fingerprints.ModelFileSize / (1024.0 * 1024.0);
        double predictedTg = loaded.Plan.Prediction.TokensPerSecond;
        Console.WriteLine("| model | size | backend | threads | test | t/s | predicted t/s | measured/predicted |");
        Console.WriteLine("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |");

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
        Row($"pp{promptLength}", Pp, predictedTg * Math.Max(1, loaded.Plan.Inputs.Batch));
        if (o.Predict > 0) Row($"tg{o.Predict}", Tg, predictedTg);
        return 0;

        void Row(string test, Func<double> measure, double predicted)
        {
            measure();   // warm-up
            var rates = new double[o.BenchmarkRepetitions];
            for (int r = 0; r < rates.Length; r++) rates[r] = measure();
            double mean = rates.Average();
            double sd = rates.Length > 1 ? Math.Sqrt(rates.Sum(x => (x - mean) * (x - mean)) / (rates.Length - 1)) : 0;
            string ratio = predicted > 0 ? (mean / predicted).ToString("F2", CultureInfo.InvariantCulture) : "-";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {sizeMiB:F2} MiB | {(model is CpuModel c ? "CPU | " + c.Threads : "CUDA | -")} | {test} | {mean:F2} ± {sd:F2} | {predicted:F2} | {ratio} |"));
        }
    }
}
