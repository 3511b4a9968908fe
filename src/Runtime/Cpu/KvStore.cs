using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Runtime.Cpu;

/// <summary>The f16 KV cache's two conversions. <see cref="Write"/> stores a pass's K (after RoPE) and V rows, each
/// value rounded to nearest even as `(Half)x` and the CUDA backend's kernels/KvStore.cs (cvt.rn.f16.f32) round it, so
/// both backends attend over the same cached values (llama.cpp's default cache type is f16 too).
/// <see cref="Widen"/> reads a cached row back as f32, exactly, for attention.</summary>
public static unsafe class KvStore
{
    /// <summary>k, v: [count] f32 (count = tokens · kv_dim); kCache, vCache: the rows at the pass's first position.
    /// TensorPrimitives.ConvertToHalf is the vectorised cast (test KvStore_rounds_like_a_Half_cast); the store runs
    /// once per pass, so its call overhead does not matter.</summary>
    public static void Write(float* k, float* v, Half* kCache, Half* vCache, int count)
    {
        TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(k, count), new Span<Half>(kCache, count));
        TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(v, count), new Span<Half>(vCache, count));
    }

    /// <summary>dst[i] = (float)src[i], exact. Attention widens every cached row it reads, a head_dim-long row at a
    /// time, so this is inlined AVX-512/AVX2 rather than a TensorPrimitives.ConvertToSingle call per row (whose fixed cost
    /// per call tripled attention's time at 2048 positions). F. Giesen's magic-multiply half_to_float ("half to
    /// float done quick", 2012): exponent and mantissa shifted into f32 place read as an f32 2¹¹² too small (the
    /// biases differ by 112), so one multiply by 2¹¹² rescales normals and subnormals exactly (zero stays zero); f16
    /// inf and NaN (exponent 31) take the f32 maximum exponent instead, mantissa kept; the sign goes back last.
    /// Tested on all 65536 f16 values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Half* src, float* dst, int n)
    {
        int i = 0;
        if (Avx512F.IsSupported)
            for (; i + 16 <= n; i += 16)
                Widen16(Avx512F.ConvertToVector512Int32(Vector256.Load((ushort*)(src + i))).AsUInt32()).Store(dst + i);
        if (Avx2.IsSupported)
            for (; i + 8 <= n; i += 8)
                Widen8(Avx2.ConvertToVector256Int32((ushort*)(src + i)).AsUInt32()).Store(dst + i);
        for (; i < n; i++) dst[i] = (float)src[i];
    }

    private const uint InfNaN = 0x7C00u << 13;          // f16 exponent 31, shifted into f32 place
    private const uint F32Exponent = 0xFFu << 23;
    private const uint Rebias = (127u + 112) << 23;     // the f32 bits of 2¹¹² = 2^(127 - 15)

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen16(Vector512<uint> h)
    {
        var shifted = (h & Vector512.Create(0x7FFFu)) << 13;
        var scaled = (shifted.AsSingle() * Vector512.Create(Rebias).AsSingle()).AsUInt32();
        var bits = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(shifted, Vector512.Create(InfNaN)),
            shifted | Vector512.Create(F32Exponent), scaled);
        return (bits | ((h & Vector512.Create(0x8000u)) << 16)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen8(Vector256<uint> h)
    {
        var shifted = (h & Vector256.Create(0x7FFFu)) << 13;                     // exponent and mantissa
        var scaled = (shifted.AsSingle() * Vector256.Create(Rebias).AsSingle()).AsUInt32(); // rebias: exact, subnormals too
        var bits = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(shifted, Vector256.Create(InfNaN)),
            shifted | Vector256.Create(F32Exponent), scaled);                     // inf, NaN
        return (bits | ((h & Vector256.Create(0x8000u)) << 16)).AsSingle();
    }
}
