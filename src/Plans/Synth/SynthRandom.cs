using System.Runtime.Intrinsics;

namespace Engine.Plans.Synth;

/// <summary>xoshiro256** (Blackman and Vigna, https://prng.di.unimi.it/) seeded through SplitMix64, so a
/// (seed, stream) pair always gives the same sequence whichever thread draws it.</summary>
internal struct SynthRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public SynthRandom(ulong seed)
    {
        _s0 = SplitMix(ref seed); _s1 = SplitMix(ref seed); _s2 = SplitMix(ref seed); _s3 = SplitMix(ref seed);
    }

    /// <summary>A seed for sub-stream <paramref name="stream"/> of <paramref name="seed"/>.</summary>
    public static ulong Derive(ulong seed, ulong stream)
    {
        ulong s = seed ^ (stream * 0xD1B54A32D192ED03UL);
        return SplitMix(ref s);
    }

    public ulong Next()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>An approximately normal value of standard deviation 1: the Irwin–Hall sum of the four 16-bit
    /// quarters of one draw, centred and scaled (bounded at ±3.46; cheap, which matters at 70B scale).</summary>
    public float NextNormal()
    {
        ulong r = Next();
        long sum = (long)(r & 0xFFFF) + (long)((r >> 16) & 0xFFFF) + (long)((r >> 32) & 0xFFFF) + (long)(r >> 48);
        const float mean = 4 * 65535 / 2f;
        const float invStd = 1f / 37837.08f;   // sqrt(4·(65536²−1)/12)
        return (sum - mean) * invStd;
    }

    internal static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>offset + scale·N(0, 1) values (Irwin–Hall of four 16-bit uniforms, as
/// <see cref="SynthRandom.NextNormal"/>) from four xoshiro256** streams run side by side in one Vector256 (lane
/// k seeded by SplitMix from the seed): two steps give 8 × 64 random bits, and each 32-bit lane sums its own
/// two 16-bit halves plus those of the same lane of the other step, so 8 values per two steps with no scalar
/// work. The values depend only on the seed and the lengths asked for (Vector256 gives the same bits with
/// or without hardware acceleration), so a chunk's stream is the same whichever thread draws it.</summary>
internal struct SynthNormals
{
    private Vector256<ulong> _s0, _s1, _s2, _s3;

    public SynthNormals(ulong seed)
    {
        Span<ulong> lanes = stackalloc ulong[16];
        for (int i = 0; i < 16; i++) lanes[i] = SynthRandom.SplitMix(ref seed);
        _s0 = Vector256.Create<ulong>(lanes[..4]);
        _s1 = Vector256.Create<ulong>(lanes[4..8]);
        _s2 = Vector256.Create<ulong>(lanes[8..12]);
        _s3 = Vector256.Create<ulong>(lanes[12..]);
    }

    public void Fill(Span<float> dst, float offset, float scale)
    {
        const float mean = 4 * 65535 / 2f;
        const float invStd = 1f / 37837.08f;   // sqrt(4·(65536²−1)/12)
        var k = Vector256.Create(scale * invStd);
        var b = Vector256.Create(offset - mean * scale * invStd);
        var low16 = Vector256.Create(0xFFFFu);
        int i = 0;
        for (; i + 8 <= dst.Length; i += 8)
        {
            var a = Step().AsUInt32();
            var c = Step().AsUInt32();
            var sum = (a & low16) + (a >> 16) + (c & low16) + (c >> 16);   // ≤ 4·65535: exact in int and float
            (Vector256.ConvertToSingle(sum.AsInt32()) * k + b).CopyTo(dst.Slice(i));
        }
        if (i < dst.Length)
        {
            Span<float> tail = stackalloc float[8];
            Fill(tail, offset, scale);
            tail[..(dst.Length - i)].CopyTo(dst.Slice(i));
        }
    }

    /// <summary>One xoshiro256** step of the four streams; ·5 and ·9 as shift-adds (no 64-bit vector multiply
    /// before AVX-512).</summary>
    private Vector256<ulong> Step()
    {
        var x5 = (_s1 << 2) + _s1;
        var rot = (x5 << 7) | (x5 >> 57);
        var result = (rot << 3) + rot;
        var t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = (_s3 << 45) | (_s3 >> 19);
        return result;
    }
}
