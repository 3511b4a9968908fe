using Engine.Runtime.Cuda;
using Xunit;

namespace Engine.Kernels.Tests;

/// <summary>The runtime's choice of split-k for the tiled GEMM (src/Runtime/Cuda/SplitK.cs), on an H200's 264 GEMM
/// slots (132 SMs × 2) and the spec's workspace of 256 partial tiles, for an 8B's shapes.</summary>
public class SplitKTests
{
    [Fact]
    public void The_runtime_sizes_partials_and_stages_as_the_gemm_does()
    {
        Assert.Equal(Gemm.PartFloats, SplitK.PartFloats);
        Assert.Equal(32 * Gemm.StageGroups, SplitK.StageColumns);
    }

    /// <summary>(tiles, cols, splits): the o and down projections (32 row tiles) below 64 tokens split 8 ways (256
    /// groups), at 128 tokens 4, at 256 tokens 2; q/k/v (48 row tiles) 5 ways (6 would be two waves); a full wave or
    /// more (pp512's 256 o/down tiles, 384 q/k/v tiles: 768 partials would not fit the workspace) none; nor columns
    /// too few for two stages a split (256 columns: 2 stages, one split).</summary>
    [Theory]
    [InlineData(32, 4096, 8)]
    [InlineData(32, 14336, 8)]
    [InlineData(64, 4096, 4)]
    [InlineData(128, 14336, 2)]
    [InlineData(48, 4096, 5)]
    [InlineData(96, 4096, 2)]
    [InlineData(256, 4096, 1)]
    [InlineData(384, 4096, 1)]
    [InlineData(32, 256, 1)]
    [InlineData(32, 512, 2)]
    public void Splits_fill_one_wave_within_the_workspace(int tiles, int cols, int splits) =>
        Assert.Equal((uint)splits, SplitK.Of(tiles, cols, slots: 264, capacity: 256));

    [Fact]
    public void No_workspace_no_split() => Assert.Equal(1u, SplitK.Of(32, 4096, slots: 264, capacity: 0));
}
