using Engine.Plans.Formats;
using Xunit;

namespace Engine.Plans.Tests.Formats;

public class HalfFloatTests
{
    [Fact]
    public void Fp16MatchesIeeeRoundToNearestEven()
    {
        // ggml's branch-free conversion against .NET's IEEE conversion, on random bit patterns and edge values.
        var rng = new Random(7);
        var special = new uint[] { 0, 0x80000000, 0x3F800000, 0x477FE000, 0x477FF000, 0x477FEFFF, 0x47800000, 0x7F800000,
            0xFF800000, 0x33800000, 0x33000000, 0x33000001, 0x387FC000, 0x38800000, 0x7F7FFFFF, 0x00000001 };
        foreach (uint bits in special.Concat(Enumerable.Range(0, 200_000).Select(_ => (uint)rng.NextInt64(0, 1L << 32))))
        {
            float f = BitConverter.UInt32BitsToSingle(bits);
            if (float.IsNaN(f)) continue;
            Assert.Equal(BitConverter.HalfToUInt16Bits((Half)f), Fp16.FromFloat(f));
        }
    }

    [Fact]
    public void Fp16NanIsCanonicalQuietNan()
    {
        Assert.Equal(0x7E00, Fp16.FromFloat(BitConverter.UInt32BitsToSingle(0x7F800001)));
        Assert.Equal(0xFE00, Fp16.FromFloat(BitConverter.UInt32BitsToSingle(0xFFC12345)));
        for (int h = 0; h < 0x10000; h++)
        {
            float f = Fp16.ToFloat((ushort)h);
            if (!float.IsNaN(f)) Assert.Equal((ushort)h, Fp16.FromFloat(f));
        }
    }

    [Theory]
    [InlineData(0x3F800000u, 0x3F80)]   // 1.0
    [InlineData(0x3F808000u, 0x3F80)]   // tie, even stays
    [InlineData(0x3F818000u, 0x3F82)]   // tie, odd rounds up
    [InlineData(0x3F808001u, 0x3F81)]   // above tie
    [InlineData(0x7F7FFFFFu, 0x7F80)]   // max float rounds to infinity
    [InlineData(0x7F800000u, 0x7F80)]   // infinity
    [InlineData(0x7F800001u, 0x7FC0)]   // signalling NaN forced quiet
    [InlineData(0xFFC12345u, 0xFFC1)]   // quiet NaN keeps sign and payload top
    [InlineData(0x00000001u, 0x0000)]   // smallest subnormal rounds to zero, not flushed beforehand
    [InlineData(0x00018000u, 0x0002)]   // subnormal tie to even
    public void Bf16RoundsAsGgml(uint input, int expected)
    {
        Assert.Equal((ushort)expected, Bf16.FromFloat(BitConverter.UInt32BitsToSingle(input)));
        Assert.Equal(BitConverter.UInt32BitsToSingle((uint)expected << 16), Bf16.ToFloat((ushort)expected), 0f);
    }
}
