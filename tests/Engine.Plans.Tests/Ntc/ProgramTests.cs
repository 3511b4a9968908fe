using Engine.Plans.Cli;
using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Ntc;

[Collection("Console")]
public sealed class ProgramTests : IDisposable
{
    private readonly Gguf.TempFiles _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void Help_lists_every_command_and_exits_0()
    {
        var r = NtcCli.Run("--help");
        Assert.Equal(0, r.Exit);
        Assert.Equal("", r.Err);
        foreach (var c in Program.Commands) Assert.Contains($"  {c.Name} {c.Arguments}", r.Out);
    }

    [Fact]
    public void Command_names_are_unique()
    {
        Assert.Equal(Program.Commands.Length, Program.Commands.Select(c => c.Name).Distinct().Count());
    }

    [Fact]
    public void Version()
    {
        var r = NtcCli.Run("--version");
        Assert.Equal(0, r.Exit);
        Assert.Equal("ntc 0.1.0\n", r.Out);
    }

    [Fact]
    public void No_command_prints_usage_on_stderr_and_exits_2()
    {
        var r = NtcCli.Run();
        Assert.Equal(2, r.Exit);
        Assert.Equal("", r.Out);
        Assert.Contains("usage: ntc COMMAND", r.Err);
    }

    [Fact]
    public void Unknown_command_prints_usage_on_stderr_and_exits_2()
    {
        var r = NtcCli.Run("frobnicate", "x");
        Assert.Equal(2, r.Exit);
        Assert.Equal("", r.Out);
        Assert.StartsWith("ntc: unknown command \"frobnicate\"\n", r.Err);
        Assert.Contains("usage: ntc COMMAND", r.Err);
    }

    [Fact]
    public void Command_help()
    {
        var r = NtcCli.Run("inspect", "--help");
        Assert.Equal(0, r.Exit);
        Assert.StartsWith("usage: ntc inspect MODEL.gguf [--json]\n", r.Out);
    }

    [Fact]
    public void Missing_file_is_one_line_exit_1()
    {
        string missing = _tmp.Path("missing.gguf");
        Assert.Equal($"ntc: {missing}: offset 0: file = -: cannot open: no such file", NtcCli.Fails(NtcCli.Run("inspect", missing)));
    }

    [Fact]
    public void Truncated_file_is_one_line_exit_1()
    {
        byte[] head = File.ReadAllBytes(RepoPaths.Model("stories260K.gguf")).AsSpan(0, 5000).ToArray();
        string path = _tmp.Write(head, "truncated");
        string line = NtcCli.Fails(NtcCli.Run("inspect", path));
        Assert.StartsWith($"ntc: {path}: offset ", line);
        Assert.EndsWith("tokenizer.ggml.tokens[370].length = -: truncated: needs 8 bytes, 4 remain", line);
    }

    [Fact]
    public void Data_cut_short_is_one_line_exit_1()
    {
        byte[] whole = File.ReadAllBytes(RepoPaths.Model("stories260K.gguf"));
        string path = _tmp.Write(whole.AsSpan(0, whole.Length - 1), "short");
        string line = NtcCli.Fails(NtcCli.Run("inspect", path, "--json"));
        Assert.EndsWith("blk.4.ffn_norm.weight.offset = 1170944: tensor data (256 bytes at 1185120) runs past the end of the file (1185375 bytes)", line);
    }

    [Fact]
    public void Usage_errors_are_one_line_exit_1()
    {
        Assert.Equal("ntc: missing MODEL.gguf", NtcCli.Fails(NtcCli.Run("inspect")));
        Assert.Equal("ntc: unknown option --jsn (known: --json)", NtcCli.Fails(NtcCli.Run("inspect", "m.gguf", "--jsn")));
    }

    [Fact]
    public void Not_a_gguf_file()
    {
        string path = _tmp.Write("hello, world\n"u8, "text");
        Assert.Equal($"ntc: {path}: offset 0: magic = 0x6C6C6568: not a GGUF file (expected \"GGUF\")", NtcCli.Fails(NtcCli.Run("inspect", path)));
    }
}
