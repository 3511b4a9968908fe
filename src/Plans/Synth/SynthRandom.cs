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

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
