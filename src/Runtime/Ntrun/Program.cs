using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Plans.Gguf;
using Engine.Plans.PlanFile;
using Engine.Runtime.Chat;
using Engine.Runtime.Sampling;
using Engine.Runtime.Streaming;
using Engine.Runtime.Tokenization;

namespace Engine.Runtime.Cli;

/// <summary>ntrun PLAN: load the plan (<see cref="LoadedPlan"/>), tokenize the prompt, generate and stream the text
/// (llama.cpp's llama-simple is the behaviour to match; --chat is llama-simple-chat). Every failure is one line on
/// stderr and a non-zero exit: 2 for a bad command line, 1 for anything else, 130 after Ctrl-C.</summary>
public static class Program
{
    public static int Main(string[] args) => Run(args, Console.In);

    /// <summary>As <see cref="Main(string[])"/>, reading --chat's user lines from <paramref name="input"/>.</summary>
    public static int Run(string[] args, TextReader input)
    {
        NtrunOptions options;
        try { options = CommandLine.Parse(args); }
        catch (UsageException e) { Console.Error.WriteLine("ntrun: " + e.Message); return 2; }
        if (options.ShowHelp) { Console.WriteLine(CommandLine.Usage); return 0; }
        if (options.ShowVersion) { Console.WriteLine("ntrun " + Engine.Plans.EngineInfo.Version); return 0; }
        try
        {
            RefuseGguf(options.PlanPath!);
            using var loaded = LoadedPlan.Load(options.PlanPath!, options.ModelPath, options.Threads, new PlanRunOptions
            {
                Streaming = new StreamingOptions { From = options.StreamFrom },
                Backend = options.Backend,
            });
            if (options.Benchmark) return Benchmark.Run(loaded, options);
            if (options.PerplexityFile != null) return Perplexity.Run(loaded, options.PerplexityFile, Console.Out);
            return options.Chat ? ChatLoop.Run(loaded, options, input) : Generate(loaded, options);
        }
        catch (Exception e) when (e is PlanException or GgufException or UsageException or ChatFormatException or IOException
                                      or UnauthorizedAccessException or StreamingException or Cuda.CudaException
                                      or Cuda.CudaModuleException or Cuda.CudaPlanException)
        {
            Console.Error.WriteLine("ntrun: " + e.Message.ReplaceLineEndings(" "));
            return 1;
        }
    }

    /// <summary>A GGUF given where the plan goes gets the command that makes the plan.</summary>
    private static void RefuseGguf(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        try
        {
            using var f = File.OpenRead(path);
            if (f.Read(magic) == 4 && magic.SequenceEqual("GGUF"u8))
                throw new UsageException($"{path} is a GGUF model, not a plan: run `ntc plan {path} -o {Path.ChangeExtension(path, ".plan")}`, then ntrun that plan");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* PlanReader says it in its words */ }
    }

    private static int Generate(LoadedPlan loaded, NtrunOptions o)
    {
        var tokenizer = loaded.Tokenizer;
        int[] prompt = PromptTokens(o, tokenizer);
        CheckFits(prompt.Length, 0, loaded, o.PlanPath!);
        var session = loaded.OpenSession(Sampling(o));
        bool asIds = o.PrintIds;
        var text = new Utf8Console(Console.Out);
        var decoder = new StreamingDecoder(tokenizer);

        using var interrupt = new CtrlC();
        using var dump = o.DumpLogits != null ? new LogitsWriter(o.DumpLogits) : null;
        var clock = Stopwatch.StartNew();
        int nPrompt = o.NPrompt >= 0 ? o.NPrompt : prompt.Length;
        if (dump != null && nPrompt < prompt.Length)
        {
            // Teacher forcing: one pass over prompt + forced tokens, rows from the last prompt position on.
            int vocab = loaded.Plan.Config.VocabSize;
            var all = new float[(long)prompt.Length * vocab];
            session.Feed(prompt, all);
            dump.Write(all.AsSpan((nPrompt - 1) * vocab));
        }
        else
        {
            session.Feed(prompt);
        }
        double promptSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();

        // llama-simple echoes the prompt, then streams the generated pieces (special tokens not rendered).
        if (!asIds) foreach (int t in prompt) text.Write(decoder.Push(t));
        bool first = true;
        Func<int, bool> isEnd = o.IgnoreEos ? _ => false : tokenizer.IsEndOfGeneration;
        int produced = session.Generate(o.Predict, isEnd, (token, logits) =>
        {
            dump?.Write(logits);
            if (asIds) { Console.Out.Write(first ? token.ToString() : " " + token); first = false; }
            else text.Write(decoder.Push(token));
        }, interrupt.Token, withLogits: dump != null);
        if (!asIds) text.Write(decoder.Flush());
        Console.Out.WriteLine();
        Console.Out.Flush();
        double genSeconds = clock.Elapsed.TotalSeconds;
        if (!interrupt.Pressed) dump?.Commit();
        Console.Error.WriteLine(
            $"ntrun: prompt {prompt.Length} tokens in {promptSeconds * 1e3:F1} ms ({prompt.Length / promptSeconds:F1} tok/s), " +
            $"generated {produced} tokens in {genSeconds * 1e3:F1} ms ({(produced > 0 ? produced / genSeconds : 0):F1} tok/s), " +
            loaded.BackendName + (interrupt.Pressed ? " (interrupted)" : ""));
        return interrupt.Pressed ? 130 : 0;
    }

    internal static SamplerSettings Sampling(NtrunOptions o)
    {
        ulong seed = o.Seed ?? (ulong)Random.Shared.NextInt64();
        if (o.Seed == null && o.Temperature > 0) Console.Error.WriteLine($"ntrun: seed {seed}");
        return new SamplerSettings
        {
            Temperature = o.Temperature, TopK = o.TopK, TopP = o.TopP, MinP = o.MinP,
            RepeatPenalty = o.RepeatPenalty, RepeatLastN = o.RepeatLastN, Seed = seed,
        };
    }

    /// <summary>A prompt longer than the context left is refused before anything runs.</summary>
    internal static void CheckFits(int tokens, int position, LoadedPlan loaded, string planPath)
    {
        int left = loaded.Context - position;
        if (tokens > left)
            throw new UsageException(position == 0
                ? $"the prompt has {tokens} tokens, more than the context of {loaded.Context} in {planPath}: re-plan with ntc plan --ctx N (N > {tokens})"
                : $"the message has {tokens} tokens, more than the {left} left of the context of {loaded.Context} in {planPath}");
    }

    private static int[] PromptTokens(NtrunOptions o, Tokenizer tokenizer)
    {
        if (o.PromptIds != null)
        {
            foreach (int id in o.PromptIds)
                if (id >= tokenizer.VocabSize) throw new UsageException($"--prompt-ids: token id {id} is outside the vocabulary (0..{tokenizer.VocabSize - 1})");
            return o.PromptIds;
        }
        string? text = o.Prompt ?? (o.PromptFile != null ? File.ReadAllText(o.PromptFile) : null);
        // llama-simple and llama-cli tokenize with add_special (BOS as the vocabulary's add_bos says) and
        // parse_special (a "<|eot_id|>" typed in the prompt is that token). No prompt: BOS alone, as llama.cpp starts.
        if (text != null) return tokenizer.Encode(text, addSpecial: true, parseSpecial: true);
        if (tokenizer.BosId < 0) throw new UsageException("no prompt given and the model has no BOS token: give -p or --prompt-ids");
        return [tokenizer.BosId];
    }
}

/// <summary>Writes UTF-8 chunks (complete sequences, as <see cref="StreamingDecoder"/> releases them) to a
/// TextWriter through one reused char buffer, flushing each so text streams; nothing allocated per token.</summary>
internal sealed class Utf8Console(TextWriter output)
{
    private char[] _chars = new char[256];

    public void Write(ReadOnlySpan<byte> utf8)
    {
        if (utf8.IsEmpty) return;
        if (_chars.Length < utf8.Length) _chars = new char[utf8.Length * 2];
        int n = System.Text.Encoding.UTF8.GetChars(utf8, _chars);
        output.Write(_chars, 0, n);
        output.Flush();
    }
}

/// <summary>Ctrl-C while this is alive cancels <see cref="Token"/> instead of killing the process, so generation
/// stops after the current token, the output is flushed and a partial --dump-logits file is removed.</summary>
internal sealed class CtrlC : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly ConsoleCancelEventHandler _handler;

    public CtrlC()
    {
        _handler = (_, e) => { e.Cancel = true; _source.Cancel(); };
        Console.CancelKeyPress += _handler;
    }

    public CancellationToken Token => _source.Token;
    public bool Pressed => _source.IsCancellationRequested;

    public void Dispose()
    {
        Console.CancelKeyPress -= _handler;
        _source.Dispose();
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
