using System.Globalization;

namespace Engine.Runtime.Cli;

/// <summary>ntrun's options, llama.cpp's flag names where llama.cpp has one (common/arg.cpp).</summary>
public sealed record NtrunOptions
{
    /// <summary>The plan to run (positional).</summary>
    public string? PlanPath { get; init; }
    /// <summary>Overrides the GGUF path the plan records.</summary>
    public string? ModelPath { get; init; }
    public string? Prompt { get; init; }
    public string? PromptFile { get; init; }
    public int[]? PromptIds { get; init; }
    /// <summary>Teacher forcing: the first k of --prompt-ids are the prompt, the rest are forced generated tokens.</summary>
    public int NPrompt { get; init; } = -1;
    public int Predict { get; init; } = 128;
    public float Temperature { get; init; } = 0.8f;
    public int TopK { get; init; } = 40;
    public float TopP { get; init; } = 0.95f;
    public float MinP { get; init; } = 0.05f;
    public float RepeatPenalty { get; init; } = 1.0f;
    public int RepeatLastN { get; init; } = 64;
    public ulong? Seed { get; init; }
    public bool PrintIds { get; init; }
    public string? DumpLogits { get; init; }
    public bool IgnoreEos { get; init; }
    public bool Benchmark { get; init; }
    /// <summary>--perplexity FILE: llama.cpp-style perplexity of the file's text over chunks of the plan's context.</summary>
    public string? PerplexityFile { get; init; }
    public int BenchmarkRepetitions { get; init; } = 3;
    /// <summary>--depth N (llama-bench's -d): the benchmark's tg rows decode after N context tokens, not from position 0.</summary>
    public int BenchmarkDepth { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;
    /// <summary>Interactive chat: user lines from stdin, the model's chat format.</summary>
    public bool Chat { get; init; }
    /// <summary>A chat format by llama.cpp name, instead of the one detected from the plan's chat template.</summary>
    public string? ChatFormat { get; init; }
    public BackendKind Backend { get; init; } = BackendKind.Auto;
    /// <summary>--stream-from: how tier-C layers are read (O_DIRECT, or the mmap baseline).</summary>
    public Streaming.StreamFrom StreamFrom { get; init; } = Streaming.StreamFrom.Direct;
    public bool ShowVersion { get; init; }
    public bool ShowHelp { get; init; }
}

/// <summary>Parses argv into <see cref="NtrunOptions"/>; nothing here opens a file.</summary>
public static class CommandLine
{
    public const string Usage = """
        usage: ntrun PLAN [options]            (make PLAN with: ntc plan MODEL.gguf -o PLAN)
          --model PATH            the GGUF to run (default: the one the plan records)
          -p, --prompt TEXT       prompt text (BOS added as the vocabulary says; special tokens parsed);
                                  with --chat, the system message
          -f, --file FILE         prompt text from a file
          --prompt-ids "ID ..."   the whole prompt as token ids (no BOS added)
          --n-prompt K            teacher forcing: the first K of --prompt-ids are the prompt, the rest are
                                  forced generated tokens whose logits --dump-logits writes
          -n, --n-predict N       tokens to generate (default 128; per reply with --chat)
          --temp T                temperature; 0 = greedy (default 0.8)
          --top-k K               (default 40; 0 = off)
          --top-p P               (default 0.95; 1 = off)
          --min-p P               (default 0.05; 0 = off)
          --repeat-penalty R      (default 1.0 = off)
          --repeat-last-n N       penalty window (default 64)
          -s, --seed S            sampling seed (default: random, printed)
          --chat                  interactive chat: one user message per stdin line, an empty line or EOF ends
          --chat-format NAME      llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, llama3
                                  (default: detected from the model's chat template)
          --ids                   print the generated token ids instead of text
          --dump-logits FILE      float32 LE rows of n_vocab: the last prompt position, then each generated one
          --ignore-eos            do not stop at end-of-generation tokens
          --perplexity FILE       perplexity of FILE's text in chunks of the plan's context, scoring the second half
                                  of each chunk (llama.cpp's perplexity tool)
          --benchmark             prompt and generation speed (tokens/s), llama-bench style, beside the plan's
                                  predicted figures
          -r, --repetitions N     benchmark runs (default 3)
          -d, --depth N           benchmark tg rows after N tokens of context (llama-bench's -d; default 0)
          -t, --threads N         CPU threads (default: all cores)
          --stream-from direct|mmap
                                  how streamed tier-C layers are read: O_DIRECT reads of the plan's I/O lists
                                  (default), or copies out of a memory map (the page-cache baseline)
          --backend B             cpu, cuda or auto (default: cuda when the plan carries PTX for this GPU).
                                  cpu runs any plan, one made for a GPU too (its device arena in host memory,
                                  host-to-device copies on a copy thread)
          --version, -h/--help
        The context length and batch size are the plan's (ntc plan --ctx N).
        """;

    /// <summary>Parses arguments; a bad one throws <see cref="UsageException"/> with one line.</summary>
    public static NtrunOptions Parse(string[] args)
    {
        var o = new NtrunOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{a} needs a value");
            int Int(int min) => ParseInt(a, Value(), min);
            float Float(float min, float max) => ParseFloat(a, Value(), min, max);
            o = a switch
            {
                "-m" or "--model" => o with { ModelPath = Value() },
                "--chat" => o with { Chat = true },
                "--chat-format" => o with { ChatFormat = Value(), Chat = true },
                "-p" or "--prompt" => o with { Prompt = Value() },
                "-f" or "--file" => o with { PromptFile = Value() },
                "--prompt-ids" => o with { PromptIds = ParseIds(Value()) },
                "--n-prompt" => o with { NPrompt = Int(1) },
                "-n" or "--n-predict" => o with { Predict = Int(0) },
                "--temp" => o with { Temperature = Float(0, float.MaxValue) },
                "--top-k" => o with { TopK = Int(0) },
                "--top-p" => o with { TopP = Float(0, 1) },
                "--min-p" => o with { MinP = Float(0, 1) },
                "--repeat-penalty" => o with { RepeatPenalty = Float(0, float.MaxValue) },
                "--repeat-last-n" => o with { RepeatLastN = ParseInt(a, Value(), -1) },
                "-s" or "--seed" => o with { Seed = ParseSeed(a, Value()) },
                "--ids" => o with { PrintIds = true },
                "--dump-logits" => o with { DumpLogits = Value() },
                "--ignore-eos" => o with { IgnoreEos = true },
                "--benchmark" => o with { Benchmark = true },
                "--perplexity" => o with { PerplexityFile = Value() },
                "-r" or "--repetitions" => o with { BenchmarkRepetitions = Int(1) },
                "-d" or "--depth" => o with { BenchmarkDepth = Int(0) },
                "-t" or "--threads" => o with { Threads = Int(1) },
                "--stream-from" => o with { StreamFrom = Value() switch
                {
                    "direct" => Streaming.StreamFrom.Direct,
                    "mmap" => Streaming.StreamFrom.Mmap,
                    var v => throw new UsageException($"--stream-from = \"{v}\": expected direct or mmap"),
                } },
                "--backend" => o with { Backend = ParseBackend(a, Value()) },
                "-c" or "--ctx-size" or "-b" or "--batch-size" =>
                    throw new UsageException($"{a}: the context and batch sizes are the plan's: re-plan with ntc plan MODEL.gguf --ctx N"),
                "--version" => o with { ShowVersion = true },
                "-h" or "--help" => o with { ShowHelp = true },
                _ when a.StartsWith('-') && a.Length > 1 => throw new UsageException($"unknown option {a} (see ntrun --help)"),
                _ when o.PlanPath == null => o with { PlanPath = a },
                _ => throw new UsageException($"unexpected argument \"{a}\": the plan is already {o.PlanPath}"),
            };
        }
        if (o.ShowHelp || o.ShowVersion) return o;
        if (o.PlanPath == null) throw new UsageException("no plan given: ntrun PLAN (make one with ntc plan MODEL.gguf -o PLAN)");
        int sources = (o.Prompt != null ? 1 : 0) + (o.PromptFile != null ? 1 : 0) + (o.PromptIds != null ? 1 : 0);
        if (sources > 1) throw new UsageException("give one of -p, -f, --prompt-ids");
        if (o.Chat && (o.PromptIds != null || o.Benchmark || o.DumpLogits != null || o.PrintIds))
            throw new UsageException("--chat takes text: not with --prompt-ids, --benchmark, --dump-logits or --ids");
        if (o.PerplexityFile != null && (sources > 0 || o.Chat || o.Benchmark))
            throw new UsageException("--perplexity reads its own text: not with -p, -f, --prompt-ids, --chat or --benchmark");
        if (o.NPrompt >= 0 && o.PromptIds == null) throw new UsageException("--n-prompt needs --prompt-ids");
        if (o.BenchmarkDepth > 0 && !o.Benchmark) throw new UsageException("--depth is a --benchmark option");
        if (o.PromptIds != null && o.NPrompt > o.PromptIds.Length)
            throw new UsageException($"--n-prompt {o.NPrompt} exceeds the {o.PromptIds.Length} ids of --prompt-ids");
        return o;
    }

    private static BackendKind ParseBackend(string flag, string v) => v switch
    {
        "auto" => BackendKind.Auto, "cpu" => BackendKind.Cpu, "cuda" => BackendKind.Cuda,
        _ => throw new UsageException($"{flag} = \"{v}\": expected cpu, cuda or auto"),
    };

    private static int ParseInt(string flag, string v, int min)
    {
        if (!int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int r) || r < min)
            throw new UsageException($"{flag} = \"{v}\": expected an integer ≥ {min}");
        return r;
    }

    private static float ParseFloat(string flag, string v, float min, float max)
    {
        if (!float.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out float r) || !(r >= min && r <= max))
            throw new UsageException($"{flag} = \"{v}\": expected a number in [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}]");
        return r;
    }

    private static ulong ParseSeed(string flag, string v)
    {
        if (ulong.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong s)) return s;
        if (long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out long neg)) return unchecked((ulong)neg);
        throw new UsageException($"{flag} = \"{v}\": expected an integer");
    }

    private static int[] ParseIds(string v)
    {
        var parts = v.Split([' ', ',', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException("--prompt-ids is empty");
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]))
                throw new UsageException($"--prompt-ids: \"{parts[i]}\" (item {i}) is not a token id");
        return ids;
    }
}

/// <summary>A bad command line: one line for the user, exit status 2.</summary>
public sealed class UsageException(string message) : Exception(message);
