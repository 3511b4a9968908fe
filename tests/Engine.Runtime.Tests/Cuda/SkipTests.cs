using Engine.Plans.PlanFile;
using Engine.Runtime.Cuda;
using Engine.Runtime.Generated;
using Xunit;

namespace Engine.Runtime.Tests.Cuda;

/// <summary>ENGINE_CUDA_SKIP's choice of launches (CudaModel.Skips), without a GPU: by kernel family or op name, in
/// the layers and the lm_head only, never the argmax.</summary>
public sealed class SkipTests
{
    private static readonly Plan Plan = ArgumentBlockTests.Stories;

    private static readonly Instruction[] Launches = ArgumentBlockTests.StoriesLaunches;

    private static string[] Skipped(string? skip)
    {
        bool[] skipped = CudaModel.Skips(Launches, skip);
        return Launches.Where((_, i) => skipped[i]).Select(l => $"{l.OpName}@{l.Layer}").ToArray();
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("no_such_op")]
    public void Nothing_is_left_out_unless_named(string? skip) => Assert.Empty(Skipped(skip));

    [Fact]
    public void A_family_leaves_out_its_launches_in_every_layer_but_not_the_epilogue()
    {
        int layers = Plan.Layers.Count;
        var skipped = Skipped("rms_norm");
        Assert.Equal(2 * layers, skipped.Length);
        Assert.All(Enumerable.Range(0, layers), l =>
        {
            Assert.Contains($"attn_norm@{l}", skipped);
            Assert.Contains($"ffn_norm@{l}", skipped);
        });
        Assert.DoesNotContain(skipped, s => s.StartsWith("final_norm", StringComparison.Ordinal));
    }

    [Fact]
    public void Ops_by_name_and_the_lm_head_but_never_the_argmax()
    {
        var skipped = Skipped(" ffn_down , lm_head,next_token,argmax,embed");
        Assert.Equal(Plan.Layers.Count + 1, skipped.Length);
        Assert.Contains("lm_head@-1", skipped);
        Assert.All(skipped.Where(s => s != "lm_head@-1"), s => Assert.StartsWith("ffn_down@", s));
        Assert.Equal("argmax", KernelTable.All[(int)Launches.Single(l => l.OpName == "next_token").KernelId].Family);
    }
}
