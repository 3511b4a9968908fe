using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Plans.Gguf;
using Engine.Plans;
using Engine.Plans.Model;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cuda;
using Engine.Runtime.Cpu;
using Engine.Runtime.Sampling;

namespace Engine.Runtime.Cli;

/// <summary>ntrun: parse the command line, load the model, run the prompt and generate (llama.cpp's
/// llama-cli/llama-simple is the behaviour to match). Every failure is one line on stderr and a non-zero exit.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        NtrunOptions options;
        try { options = CommandLine.Parse(args); }
        catch (UsageException e) { Console.Error.WriteLine("ntrun: " + e.Message); return 2; }
        if (options.ShowHelp) { Console.WriteLine(CommandLine.Usage); return 0; }
        if (options.ShowVersion) { Console.WriteLine("ntrun " + typeof(Program).Assembly.GetName().Version?.ToString(3)); return 0; }
        try { return Run(options); }
        catch (Exception e) when (e is GgufException or UsageException or IOException or UnauthorizedAccessException
                                      or ArgumentException or InvalidOperationException
                                      or PlanException or CudaException or CudaModuleException or CudaPlanException)
        {
            Console.Error.WriteLine("ntrun: " + e.Message);
            return 1;
        }
    }

    private static int Run(NtrunOptions o)
    {
        using var file = GgufFile.Open(o.ModelPath!);
        var config = ModelConfig.FromGguf(file);
        TokenizerData? vocab = file.Has(GgufKeys.TokenizerModel) ? TokenizerData.FromGguf(file) : null;
        ITextTokenizer? tokenizer = vocab != null && TextTokenizers.Factory != null ? TextTokenizers.Factory(vocab) : null;

        int[] prompt = PromptTokens(o, vocab, tokenizer);
        var weights = CpuWeights.FromGguf(file, config);
        int needed = o.Benchmark ? Math.Max(prompt.Length, 128) + o.Predict : prompt.Length + o.Predict;
        int context = Math.Max(1, Math.Min(o.Context, needed));
        if (prompt.Length > context)
            throw new UsageException($"the prompt has {prompt.Length} tokens: more than the context of {context} (-c)");
        Plan? plan = null;
        if (o.PlanPath != null)
        {
            plan = PlanReader.Load(o.PlanPath);
            PlanCheck.AgainstEngine(plan, EngineInfo.Version, o.PlanPath);
            PlanCheck.AgainstModel(plan, o.ModelPath!, o.PlanPath);
        }
        var selected = BackendSelector.Create(o.Backend, plan, o.PlanPath, o.ModelPath!, () => new CpuModel(config, weights, new CpuModelOptions
        {
            MaxContext = context, MaxBatch = Math.Min(o.Batch, context), Threads = o.Threads,
        }), Console.Error);
        using var disposeModel = (IDisposable)selected;
        var model = selected;
        string backend = model is CpuModel cpuModel ? $"{cpuModel.Threads} threads" : "CUDA";
        if (o.Benchmark) return Benchmark.Run(model, o, file);

        ulong seed = o.Seed ?? (ulong)Random.Shared.NextInt64();
        if (o.Seed == null && o.Temperature > 0) Console.Error.WriteLine($"ntrun: seed {seed}");
        var session = new Session(model, new SamplerSettings
        {
            Temperature = o.Temperature, TopK = o.TopK, TopP = o.TopP, MinP = o.MinP,
            RepeatPenalty = o.RepeatPenalty, RepeatLastN = o.RepeatLastN, Seed = seed,
        });
        bool asIds = o.PrintIds || tokenizer == null;
        if (!o.PrintIds && tokenizer == null)
            Console.Error.WriteLine("ntrun: no tokenizer in this build: printing token ids");

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCtrlC = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCtrlC;
        LogitsWriter? dump = o.DumpLogits != null ? new LogitsWriter(o.DumpLogits) : null;
        try
        {
            var clock = Stopwatch.StartNew();
            int nPrompt = o.NPrompt >= 0 ? o.NPrompt : prompt.Length;
            if (dump != null && nPrompt < prompt.Length)
            {
                // Teacher forcing: one pass over prompt + forced tokens, rows from the last prompt position on.
                var all = new float[(long)prompt.Length * config.VocabSize];
                session.Feed(prompt, all);
                dump.Write(all.AsSpan((nPrompt - 1) * config.VocabSize));
            }
            else
            {
                session.Feed(prompt);
            }
            double promptSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();

            var output = Console.Out;
            bool first = true;
            Func<int, bool> isEnd = o.IgnoreEos ? _ => false
                : tokenizer != null ? tokenizer.IsEndOfGeneration
                : id => vocab != null && (id == vocab.EosId || id == vocab.EotId || id == vocab.EomId);
            int produced = session.Generate(o.Predict, isEnd, (token, logits) =>
            {
                dump?.Write(logits);
                if (asIds) { output.Write(first ? token.ToString() : " " + token); first = false; }
                else output.Write(tokenizer!.DecodeStreaming(token));
                output.Flush();
            }, cancel.Token);
            if (!asIds) output.Write(tokenizer!.Flush());
            output.WriteLine();
            double genSeconds = clock.Elapsed.TotalSeconds;
            dump?.Commit();
            Console.Error.WriteLine(
                $"ntrun: prompt {prompt.Length} tokens in {promptSeconds * 1e3:F1} ms ({prompt.Length / promptSeconds:F1} tok/s), " +
                $"generated {produced} tokens in {genSeconds * 1e3:F1} ms ({(produced > 0 ? produced / genSeconds : 0):F1} tok/s), " +
                backend + (cancel.IsCancellationRequested ? " (interrupted)" : ""));
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCtrlC;
            dump?.Dispose();
        }
    }

    private static int[] PromptTokens(NtrunOptions o, TokenizerData? vocab, ITextTokenizer? tokenizer)
    {
        if (o.PromptIds != null)
        {
            int n = vocab?.Tokens.Length ?? int.MaxValue;
            foreach (int id in o.PromptIds)
                if (id >= n) throw new UsageException($"--prompt-ids: token id {id} is outside the vocabulary (0..{n - 1})");
            return o.PromptIds;
        }
        string? text = o.Prompt ?? (o.PromptFile != null ? File.ReadAllText(o.PromptFile) : null);
        if (text != null)
        {
            if (tokenizer == null)
                throw new UsageException("text prompts (-p, -f) need the tokenizer, which this build of ntrun does not have yet: give --prompt-ids");
            return tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
        }
        // No prompt: start from BOS, as llama.cpp does for an empty prompt.
        int bos = tokenizer?.BosId ?? vocab?.BosId ?? -1;
        if (bos < 0) throw new UsageException("no prompt given and the model has no BOS token: give -p or --prompt-ids");
        return [bos];
    }
}

/// <summary>Writes logits rows to FILE.part and renames it to FILE on <see cref="Commit"/>, so an interrupted or
/// failed run leaves no partial file.</summary>
internal sealed class LogitsWriter : IDisposable
{
    private readonly string _path;
    private readonly FileStream _stream;
    private bool _committed;

    public LogitsWriter(string path)
    {
        _path = path;
        _stream = new FileStream(path + ".part", FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
    }

    public void Write(ReadOnlySpan<float> rows) => _stream.Write(MemoryMarshal.AsBytes(rows));

    public void Commit()
    {
        _stream.Flush();
        _stream.Dispose();
        File.Move(_path + ".part", _path, overwrite: true);
        _committed = true;
    }

    public void Dispose()
    {
        _stream.Dispose();
        if (!_committed) File.Delete(_path + ".part");
    }
}
