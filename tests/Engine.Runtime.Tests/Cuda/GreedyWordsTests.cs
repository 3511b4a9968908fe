using System.Buffers.Binary;
using Engine.Plans.PlanFile;
using Engine.Runtime.Cuda;
using Engine.Runtime.Generated;
using Xunit;

namespace Engine.Runtime.Tests.Cuda;

/// <summary>The greedy graphs' token words (CudaModel.GreedyGraph), without a GPU: the launch that reads the tokens
/// buffer beside the argmax is the embedding, and repointing a packed block moves only its tokens view.</summary>
public sealed class GreedyWordsTests
{
    private static readonly Plan Plan = ArgumentBlockTests.Stories;

    private static readonly Instruction[] Launches = ArgumentBlockTests.StoriesLaunches;

    private static readonly ulong[] Bases = [0x1000_0000, 0x7000_0000, 0];

    [Fact]
    public void The_tokens_reader_beside_the_argmax_is_the_embedding()
    {
        int argmax = Array.FindLastIndex(Launches, l => KernelTable.All[(int)l.KernelId].Family == "argmax");
        int reader = CudaModel.TokensReader(Plan, Launches, argmax);
        Assert.True(reader >= 0 && reader < argmax);
        Assert.Equal("embed", Launches[reader].OpName);
        // Without the argmax's exclusion there are two launches that take the buffer: no single reader.
        Assert.Equal(-1, CudaModel.TokensReader(Plan, Launches, -1));
    }

    [Theory]
    [InlineData("embed")]
    [InlineData("next_token")]
    public void Repointing_moves_the_tokens_view_alone(string op)
    {
        var ins = Launches.Single(l => l.OpName == op);
        var e = KernelTable.All[(int)ins.KernelId];
        var packed = new byte[ArgumentBlocks.Stride];
        ArgumentBlocks.Pack(Plan, ins, Bases, 1, packed);
        var block = (byte[])packed.Clone();
        ArgumentBlocks.Repoint(Plan, ins, "tokens", 0xABCD_0004, 1, block);

        int at = e.Params.Single(p => p.Name == "tokens").Offset;
        Assert.Equal(0xABCD_0004UL, BinaryPrimitives.ReadUInt64LittleEndian(block.AsSpan(at)));
        Assert.Equal(1L, BinaryPrimitives.ReadInt64LittleEndian(block.AsSpan(at + 8)));
        Assert.NotEqual(0xABCD_0004UL, BinaryPrimitives.ReadUInt64LittleEndian(packed.AsSpan(at)));
        // Every other byte of the block is as packed.
        for (int i = 0; i < block.Length; i++)
            if (i < at || i >= at + 16) Assert.Equal(packed[i], block[i]);
    }
}
