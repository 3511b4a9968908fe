using System.Diagnostics;
using System.Globalization;
using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;
using Engine.Runtime.Streaming;

namespace Engine.Runtime.Cli;

/// <summary>llama-bench-style speed rows: pp (a prompt of random ids, in the plan's batches) and tg (tokens generated
/// one at a time, greedily: on the device where the backend can, <see cref="IGreedyDecoder"/>; from an empty context, or
/// after --depth N context tokens as llama-bench's -d, whose row has no prediction: the plan predicts the weights'
/// bytes, not the KV cache's), each the mean ± sd of --repetitions runs after one warm-up, beside the
/// plan's predicted tokens/s (its prediction section: a token's bytes over the bandwidths the planner assumed).
/// The plan predicts a decode step only (pp rows show "-"). A streamed plan adds a table of its links: bytes
/// streamed per token per tier beside the plan's, and each link's achieved rate beside the rate the plan assumed.</summary>
internal static class Benchmark
{
    public static int Run(LoadedPlan loaded, NtrunOptions o)
    {
        var model = loaded.Model;
        int promptLength = o.PromptIds?.Length ?? Math.Min(128, loaded.Context);
        if (o.Predict + o.BenchmarkDepth > loaded.Context)
            throw new UsageException($"-n {o.Predict}{(o.BenchmarkDepth > 0 ? $" after --depth {o.BenchmarkDepth}" : "")}: more than the context of {loaded.Context} in {o.PlanPath}");
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
        // Greedy decode, as `ntrun --temp 0` generates: on the device where the backend decodes greedily there (the
        // logits stay on it), else each step's logits out and the host's argmax.
        var device = model is IGreedyDecoder { CanDecodeGreedy: true } g ? g : null;
        Func<int, bool> more = _ => true;
        // --depth: the tg rows decode after that many context tokens (random ids, evaluated once, untimed, before the
        // tg row: every run then decodes positions depth .. depth + n − 1 over the same cache rows), as llama-bench's -d;
        // attention then reads a KV cache of that length every step.
        int depth = o.BenchmarkDepth;
        var context = new int[depth];
        for (int i = 0; i < depth; i++) context[i] = (int)(rng.NextUInt64() % (ulong)model.Config.VocabSize);
        double Tg()
        {
            int token = prompt[0];
            var sw = Stopwatch.StartNew();
            if (device != null)
            {
                int steps = device.DecodeGreedy(token, depth, o.Predict, more);
                if (steps != o.Predict) throw new InvalidOperationException($"greedy decode ran {steps} of {o.Predict} steps");
                return o.Predict / sw.Elapsed.TotalSeconds;
            }
            for (int i = 0; i < o.Predict; i++)
            {
                model.Forward([token], depth + i, logits);
                token = Sampler.ArgMax(logits);
            }
            return o.Predict / sw.Elapsed.TotalSeconds;
        }
        var streamer = loaded.Links;
        var before = streamer?.Counters ?? default;
        // The plan predicts a decode step (bytes over bandwidth); a prompt batch reads the weights once for many tokens and
        // is bound by arithmetic the plan does not model, so the pp row has no prediction.
        Row($"pp{promptLength}", Pp, 0);
        if (o.Predict > 0)
        {
            if (depth > 0) model.Forward(context, 0, logits);
            before = streamer?.Counters ?? default;
            Row(depth > 0 ? $"tg{o.Predict} @ d{depth}" : $"tg{o.Predict}", Tg, depth > 0 ? 0 : predictedTg);
        }
        if (streamer != null) Links(loaded, streamer, streamer.Counters - before, o.Predict > 0 ? $"tg{o.Predict}" : $"pp{promptLength}");
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
                $"| {name} | {sizeMiB:F2} MiB | {(model is CpuModel c ? "CPU | " + c.Threads : "CUDA | -")} | {test} | {mean:F2} ± {sd:F2} | {(predicted > 0 ? predicted.ToString("F2", CultureInfo.InvariantCulture) : "-")} | {ratio} |"));
        }
    }

    /// <summary>The streaming links over the runs of <paramref name="test"/> (warm-up included): bytes per token per
    /// tier (measured: the bytes of the streamed layers the passes ran; plan: its prediction section) and each link's
    /// achieved rate (bytes it moved over the time it was busy) beside the rate the plan's cost model used.</summary>
    private static void Links(LoadedPlan loaded, IStreamingLinks streamer, StreamCounters c, string test)
    {
        var plan = loaded.Plan;
        double tokens = Math.Max(1, c.Passes);
        static string MiB(double bytes) => (bytes / (1024.0 * 1024.0)).ToString("F3", CultureInfo.InvariantCulture) + " MiB";
        static string Rate(long bytes, long ticks) => ticks > 0
            ? (bytes / ((double)ticks / Stopwatch.Frequency) / 1e9).ToString("F2", CultureInfo.InvariantCulture) : "-";
        static string Gbps(double bytesPerSecond) => bytesPerSecond > 0 ? (bytesPerSecond / 1e9).ToString("F2", CultureInfo.InvariantCulture) : "-";
        double Ms(long ticks) => (double)ticks / Stopwatch.Frequency * 1e3 / tokens;
        Console.WriteLine();
        string readBy = streamer.ReadPathDescription != null ? ", tier C read by " + streamer.ReadPathDescription : "";
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"streaming over {test}: {streamer.StreamedLayerCount} of {plan.Config.LayerCount} layers through {streamer.SlotCount} slots, {c.Passes} passes{readBy}"));
        Console.WriteLine("| link | tier | bytes/token | plan bytes/token | busy ms/token | GB/s | plan GB/s |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        void Line(string link, string tier, long passBytes, long planBytes, long moved, long ticks, double planRate) =>
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {link} | {tier} | {MiB(passBytes)} | {MiB(planBytes)} | {Ms(ticks):F3} | {Rate(moved, ticks)} | {Gbps(planRate)} |"));
        if (streamer.PassBytesPinned > 0)
            Line($"pinned → slot ({streamer.Copier})", "B", streamer.PassBytesPinned, plan.Prediction.BytesPinned, c.CopiedPinned, c.CopyTicksPinned, plan.Inputs.H2dBandwidth);
        if (streamer.PassBytesNvme > 0)
        {
            Line("storage → staging (reader pool)", "C", streamer.PassBytesNvme, plan.Prediction.BytesNvme, c.ReadBytes, c.ReadBusyTicks, plan.Inputs.NvmeBandwidth);
            Line($"staging → slot ({streamer.Copier})", "C", streamer.PassBytesNvme, plan.Prediction.BytesNvme, c.CopiedNvme, c.CopyTicksNvme, plan.Inputs.H2dBandwidth);
        }
        if (streamer.MeasuresComputeWait) Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"compute waited for weights {Ms(c.ComputeWaitTicks):F3} ms/token; the plan predicted {plan.Prediction.TokenSeconds * 1e3:F3} ms/token " +
            $"(B {plan.Prediction.TimePinned * 1e3:F3}, C {plan.Prediction.TimeNvme * 1e3:F3})"));
    }
}
