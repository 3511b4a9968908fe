using Engine.Plans.Cli;
using Xunit;

namespace Engine.Plans.Tests.Ntc;

public sealed class ArgsTests
{
    [Fact]
    public void Positionals_flags_and_options_in_any_order()
    {
        var a = Args.Parse(["--out", "p.bin", "model.gguf", "--json", "--ctx=4096", "--", "--not-an-option"],
            options: ["--out", "--ctx"], flags: ["--json", "--quiet"]);
        Assert.Equal(["model.gguf", "--not-an-option"], a.Positional);
        Assert.True(a.Flag("--json"));
        Assert.False(a.Flag("--quiet"));
        Assert.Equal("p.bin", a.Option("--out"));
        Assert.Equal(4096, a.Int("--ctx", 0, 1, 1 << 20));
        Assert.Null(a.Option("--absent"));
        Assert.Equal(7, a.Int("--absent", 7));
        Assert.Equal("-", Args.Parse(["-"]).Single("FILE"));
    }

    [Theory]
    [InlineData(new[] { "--jsn" }, "unknown option --jsn (known: --json, --out)")]
    [InlineData(new[] { "--out" }, "--out needs a value")]
    [InlineData(new[] { "--json", "--json" }, "--json given twice")]
    [InlineData(new[] { "--out=a", "--out", "b" }, "--out given twice")]
    [InlineData(new[] { "--json=yes" }, "--json takes no value (got \"yes\")")]
    public void Mistakes_are_CliExceptions(string[] argv, string message)
    {
        var e = Assert.Throws<CliException>(() => Args.Parse(argv, options: ["--out"], flags: ["--json"]));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void A_command_without_options_says_so()
    {
        Assert.Equal("unknown option --x (this command takes none)", Assert.Throws<CliException>(() => Args.Parse(["--x"])).Message);
    }

    [Fact]
    public void Single_positional()
    {
        Assert.Equal("missing MODEL.gguf", Assert.Throws<CliException>(() => Args.Parse([]).Single("MODEL.gguf")).Message);
        Assert.Equal("expected one MODEL.gguf, got 2 arguments: a b",
            Assert.Throws<CliException>(() => Args.Parse(["a", "b"]).Single("MODEL.gguf")).Message);
    }

    [Fact]
    public void Required_and_ranged_options()
    {
        var a = Args.Parse(["--ctx", "0", "--n", "x"], options: ["--ctx", "--n", "--out"]);
        Assert.Equal("--out is required", Assert.Throws<CliException>(() => a.RequireOption("--out")).Message);
        Assert.Equal("--ctx: 0 is out of range (1..1048576)", Assert.Throws<CliException>(() => a.Int("--ctx", 1, 1, 1 << 20)).Message);
        Assert.Equal("--n: \"x\" is not an integer", Assert.Throws<CliException>(() => a.Int("--n", 1)).Message);
    }

    [Theory]
    [InlineData("4096", 4096L)]
    [InlineData("0", 0L)]
    [InlineData("512M", 512L << 20)]
    [InlineData("24G", 24L << 30)]
    [InlineData("24g", 24L << 30)]
    [InlineData("24GB", 24L << 30)]
    [InlineData("24GiB", 24L << 30)]
    [InlineData("1.5T", 3L << 39)]
    [InlineData("64K", 65536L)]
    [InlineData("100B", 100L)]
    [InlineData(" 2 G ", 2L << 30)]
    [InlineData("0.5K", 512L)]
    [InlineData("8388607T", 8388607L << 40)]
    public void Sizes_are_binary_units(string text, long bytes)
    {
        Assert.Equal(bytes, Args.ParseSize(text, "--vram-budget"));
        Assert.Equal(bytes, Args.Parse(["--vram-budget", text], options: ["--vram-budget"]).Size("--vram-budget"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("G")]
    [InlineData("24X")]
    [InlineData("-1G")]
    [InlineData("1.5")]
    [InlineData("24 G B")]
    [InlineData("1e9")]
    [InlineData("8388608T")]
    [InlineData("99999999999999999999")]
    public void Bad_sizes_name_the_option(string text)
    {
        var e = Assert.Throws<CliException>(() => Args.ParseSize(text, "--ram-budget"));
        Assert.StartsWith($"--ram-budget: \"{text}\" is ", e.Message);
    }

    [Fact]
    public void Absent_size_is_null()
    {
        Assert.Null(Args.Parse([], options: ["--vram-budget"]).Size("--vram-budget"));
    }
}
