using System.Globalization;
using System.Text.RegularExpressions;

namespace Engine.Plans.Cli;

/// <summary>The arguments of one command: positionals, <c>--flags</c> and <c>--options value</c> (or
/// <c>--option=value</c>). A command declares its options and flags up front, so a misspelt one is an error
/// rather than silently ignored. <c>--</c> ends the options. Every mistake is a <see cref="CliException"/>.</summary>
public sealed partial class Args
{
    private readonly Dictionary<string, string> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Positional { get; }

    private Args(List<string> positional) => Positional = positional;

    /// <param name="argv">the arguments after the command name</param>
    /// <param name="options">names that take a value, e.g. "--out"</param>
    /// <param name="flags">names that take none, e.g. "--json"</param>
    public static Args Parse(string[] argv, string[]? options = null, string[]? flags = null)
    {
        options ??= [];
        flags ??= [];
        var positional = new List<string>();
        var a = new Args(positional);
        for (int i = 0; i < argv.Length; i++)
        {
            string s = argv[i];
            if (s == "--") { positional.AddRange(argv.AsSpan(i + 1)); break; }
            if (!s.StartsWith("--", StringComparison.Ordinal) || s.Length == 2) { positional.Add(s); continue; }
            int eq = s.IndexOf('=');
            string name = eq < 0 ? s : s[..eq];
            if (Array.IndexOf(flags, name) >= 0)
            {
                if (eq >= 0) throw new CliException($"{name} takes no value (got \"{s[(eq + 1)..]}\")");
                if (!a._flags.Add(name)) throw new CliException($"{name} given twice");
            }
            else if (Array.IndexOf(options, name) >= 0)
            {
                string value;
                if (eq >= 0) value = s[(eq + 1)..];
                else if (i + 1 < argv.Length) value = argv[++i];
                else throw new CliException($"{name} needs a value");
                if (!a._options.TryAdd(name, value)) throw new CliException($"{name} given twice");
            }
            else
            {
                var known = options.Concat(flags).Order(StringComparer.Ordinal).ToArray();
                throw new CliException(known.Length == 0
                    ? $"unknown option {name} (this command takes none)"
                    : $"unknown option {name} (known: {string.Join(", ", known)})");
            }
        }
        return a;
    }

    public bool Flag(string name) => _flags.Contains(name);

    public string? Option(string name) => _options.GetValueOrDefault(name);

    public string RequireOption(string name) => Option(name) ?? throw new CliException($"{name} is required");

    /// <summary>The one positional argument, named <paramref name="what"/> in the error when there is not exactly one.</summary>
    public string Single(string what) => Positional.Count switch
    {
        1 => Positional[0],
        0 => throw new CliException($"missing {what}"),
        _ => throw new CliException($"expected one {what}, got {Positional.Count} arguments: {string.Join(" ", Positional)}"),
    };

    /// <summary>An integer option in [min, max], or <paramref name="fallback"/> when absent.</summary>
    public long Int(string name, long fallback, long min = long.MinValue, long max = long.MaxValue)
    {
        string? s = Option(name);
        if (s == null) return fallback;
        if (!long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
            throw new CliException($"{name}: \"{s}\" is not an integer");
        if (v < min || v > max) throw new CliException($"{name}: {v} is out of range ({min}..{max})");
        return v;
    }

    /// <summary>A size option in bytes (see <see cref="ParseSize"/>), or null when absent.</summary>
    public long? Size(string name) => Option(name) is { } s ? ParseSize(s, name) : null;

    /// <summary>Bytes from a size such as 24G, 512M, 1.5T, 64KiB or 4096. Units are binary (K = 1024, as in
    /// GPU memory sizes); an optional "B" or "iB" may follow the letter; case does not matter.</summary>
    public static long ParseSize(string text, string what)
    {
        var m = SizePattern().Match(text);
        if (!m.Success)
            throw new CliException($"{what}: \"{text}\" is not a size (examples: 24G, 512M, 1.5T, 4096)");
        int shift = m.Groups[2].Value.ToUpperInvariant() switch { "" or "B" => 0, "K" => 10, "M" => 20, "G" => 30, _ => 40 };
        decimal number = decimal.Parse(m.Groups[1].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
        decimal bytes = number * (1L << shift);
        if (bytes > long.MaxValue) throw new CliException($"{what}: \"{text}\" is larger than {long.MaxValue} bytes");
        if (shift == 0 && bytes != decimal.Truncate(bytes)) throw new CliException($"{what}: \"{text}\" is not a whole number of bytes");
        return (long)decimal.Truncate(bytes);
    }

    [GeneratedRegex(@"^\s*(\d{1,20}(?:\.\d{1,9})?)\s*(?:([KMGT])(?:i?B)?|(B)?)\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SizePattern();
}
