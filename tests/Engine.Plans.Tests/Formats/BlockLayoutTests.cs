using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;
using Xunit;

namespace Engine.Plans.Tests.Formats;

public class BlockLayoutTests
{
    [Fact]
    public void BlockSizesMatchGgml()
    {
        // ggml-common.h static_asserts: block_q4_0 18, block_q8_0 34, block_q4_K 144, block_q5_K 176, block_q6_K 210.
        Check<BlockQ4_0>(BlockQ4_0.Size, 18, GgmlType.Q4_0);
        Check<BlockQ8_0>(BlockQ8_0.Size, 34, GgmlType.Q8_0);
        Check<BlockQ4_K>(BlockQ4_K.Size, 144, GgmlType.Q4_K);
        Check<BlockQ5_K>(BlockQ5_K.Size, 176, GgmlType.Q5_K);
        Check<BlockQ6_K>(BlockQ6_K.Size, 210, GgmlType.Q6_K);
    }

    private static void Check<T>(int declared, int ggml, GgmlType type) where T : unmanaged
    {
        Assert.Equal(ggml, declared);
        Assert.Equal(ggml, Unsafe.SizeOf<T>());
        Assert.Equal(ggml, Marshal.SizeOf<T>());
        Assert.Equal(ggml, GgmlTypeInfo.BlockBytes(type));
    }

    [Fact]
    public void FieldOffsetsMatchGgml()
    {
        Assert.Equal(2, (int)Marshal.OffsetOf<BlockQ4_0>(nameof(BlockQ4_0.Qs)));
        Assert.Equal(2, (int)Marshal.OffsetOf<BlockQ8_0>(nameof(BlockQ8_0.Qs)));
        Assert.Equal(4, (int)Marshal.OffsetOf<BlockQ4_K>(nameof(BlockQ4_K.Scales)));
        Assert.Equal(16, (int)Marshal.OffsetOf<BlockQ4_K>(nameof(BlockQ4_K.Qs)));
        Assert.Equal(16, (int)Marshal.OffsetOf<BlockQ5_K>(nameof(BlockQ5_K.Qh)));
        Assert.Equal(48, (int)Marshal.OffsetOf<BlockQ5_K>(nameof(BlockQ5_K.Qs)));
        Assert.Equal(128, (int)Marshal.OffsetOf<BlockQ6_K>(nameof(BlockQ6_K.Qh)));
        Assert.Equal(192, (int)Marshal.OffsetOf<BlockQ6_K>(nameof(BlockQ6_K.Scales)));
        Assert.Equal(208, (int)Marshal.OffsetOf<BlockQ6_K>(nameof(BlockQ6_K.D)));
    }
}
