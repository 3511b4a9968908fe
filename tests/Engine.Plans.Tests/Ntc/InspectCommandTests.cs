using Engine.Tests;
using Xunit;

namespace Engine.Plans.Tests.Ntc;

/// <summary>Snapshots of <c>ntc inspect</c>, text and JSON, for a float model, a K-quant mix and a vocabulary-only file.</summary>
[Collection("Console")]
public sealed class InspectCommandTests
{
    [Theory]
    [InlineData("stories260K.gguf")]
    [InlineData("stories260K-pad256-Q4_K_M.gguf")]
    [InlineData("vocab/ggml-vocab-llama-bpe.gguf")]
    public void Text(string model)
    {
        var r = NtcCli.Run("inspect", Path.Combine(RepoPaths.Models, model));
        Assert.True(r.Exit == 0, r.Err);
        Assert.Equal("", r.Err);
        Snapshot.Verify(r.Out, Path.GetFileNameWithoutExtension(model));
    }

    [Theory]
    [InlineData("stories260K.gguf")]
    [InlineData("stories260K-pad256-Q4_K_M.gguf")]
    [InlineData("vocab/ggml-vocab-llama-bpe.gguf")]
    public void Json(string model)
    {
        var r = NtcCli.Run("inspect", Path.Combine(RepoPaths.Models, model), "--json");
        Assert.True(r.Exit == 0, r.Err);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Out); // well-formed
        Assert.Equal(Path.GetFileName(model), doc.RootElement.GetProperty("file").GetString());
        Snapshot.Verify(r.Out, Path.GetFileNameWithoutExtension(model));
    }

    [Fact]
    public void Every_shipped_model_inspects()
    {
        foreach (string name in Gguf.GgufModelsTests.ModelNames())
        foreach (bool json in new[] { false, true })
        {
            var r = json ? NtcCli.Run("inspect", Path.Combine(RepoPaths.Models, name), "--json") : NtcCli.Run("inspect", Path.Combine(RepoPaths.Models, name));
            Assert.True(r.Exit == 0, $"{name}: {r.Err}");
            if (json) System.Text.Json.JsonDocument.Parse(r.Out).Dispose();
        }
    }
}
