using System.Numerics.Tensors;

namespace Engine.Runtime.Cpu;

/// <summary>Writes a pass's K (after RoPE) and V rows into a layer's f16 caches. Each value is rounded to nearest
/// even, as `(Half)x` and the CUDA backend's kernels/KvStore.cs (cvt.rn.f16.f32) round it, so both backends attend
/// over the same cached values (llama.cpp's default cache type is f16 too). TensorPrimitives.ConvertToHalf is the
/// vectorised form of that conversion (the test KvStore_rounds_like_a_Half_cast holds it to the cast).</summary>
public static unsafe class KvStore
{
    /// <summary>k, v: [count] f32 (count = tokens · kv_dim); kCache, vCache: the rows at the pass's first position.</summary>
    public static void Write(float* k, float* v, Half* kCache, Half* vCache, int count)
    {
        TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(k, count), new Span<Half>(kCache, count));
        TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(v, count), new Span<Half>(vCache, count));
    }
}
