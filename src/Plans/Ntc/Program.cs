using Engine.Plans.Gguf;

namespace Engine.Plans.Cli;

/// <summary>One ntc command: its name, its arguments as the usage line shows them, what it does, its entry point
/// (<c>public static int Run(string[] args)</c> in <c>&lt;Name&gt;Command.cs</c>, given the arguments after the name).</summary>
public sealed record Command(string Name, string Arguments, string Summary, Func<string[], int> Run);

/// <summary><c>ntc</c>, the planner's command line. Exit codes: 0 success, 1 an error (one line on stderr,
/// <c>ntc: message</c>, never a stack trace), 2 no or unknown command (usage on stderr).</summary>
public static class Program
{
    /// <summary>Every command, one line each. A command is listed only once it exists.</summary>
    public static readonly Command[] Commands =
    [
        new("inspect", "MODEL.gguf [--json]", "show a GGUF file: hyper-parameters, rope, tokenizer, tensor types, bytes per layer", InspectCommand.Run),
        new("synth", "--preset P --type T -o OUT.gguf [--layers N] [--vocab-from V.gguf] [--header-only] [--seed S]", "write a random-weight Llama GGUF of real shapes", SynthCommand.Run),
        new("tokenize", "MODEL.gguf TEXT [--no-bos] [--parse-special]", "print the token ids of a text, as llama_tokenize", TokenizeCommand.Run),
        new("plan", "MODEL.gguf [-o PLAN] [--hw auto|NAME|FILE.json] [--ctx N] [--vram-budget SIZE] [--ram-budget SIZE] [--nvme DEVICE --lba BASE] [--slots N]", "decide tiers, buffers, kernels and I/O ahead of time and write the plan file", PlanCommand.Run),
        new("explain", "PLAN [--json]", "print a plan as deterministic text", ExplainCommand.Run),
    ];

    public static string Version => typeof(Program).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public static int Main(string[] args)
    {
        try
        {
            return Dispatch(args);
        }
        catch (Exception e) when (e is GgufException or CliException or Engine.Plans.PlanFile.PlanException)
        {
            return Fail(e.Message);
        }
        catch (Exception e)
        {
            // Not a foreseen error, but still one line: the type says where to look.
            return Fail($"internal error: {e.GetType().Name}: {e.Message}");
        }
    }

    private static int Dispatch(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.Write(Usage());
            return 2;
        }
        switch (args[0])
        {
            case "--help" or "-h" or "help":
                Console.Out.Write(Usage());
                return 0;
            case "--version":
                Console.Out.WriteLine("ntc " + Version);
                return 0;
        }
        var command = Array.Find(Commands, c => c.Name == args[0]);
        if (command == null)
        {
            Console.Error.WriteLine($"ntc: unknown command \"{args[0]}\"");
            Console.Error.Write(Usage());
            return 2;
        }
        string[] rest = args[1..];
        if (rest is ["--help"] or ["-h"])
        {
            Console.Out.WriteLine($"usage: ntc {command.Name} {command.Arguments}");
            Console.Out.WriteLine("  " + command.Summary);
            return 0;
        }
        return command.Run(rest);
    }

    public static string Usage()
    {
        var w = new StringWriter { NewLine = "\n" };
        w.WriteLine($"ntc {Version}: plans Llama-family GGUF models for ntrun");
        w.WriteLine("usage: ntc COMMAND [ARGS]   (ntc COMMAND --help for one command)");
        w.WriteLine("commands:");
        int width = Commands.Max(c => c.Name.Length + 1 + c.Arguments.Length);
        foreach (var c in Commands)
            w.WriteLine($"  {(c.Name + " " + c.Arguments).PadRight(width)}  {c.Summary}");
        w.WriteLine("  --version".PadRight(width + 2) + "  print the version");
        return w.ToString();
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine("ntc: " + GgufException.Printable(message));
        return 1;
    }
}
