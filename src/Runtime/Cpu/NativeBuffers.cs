using System.Runtime.InteropServices;

namespace Engine.Runtime.Cpu;

/// <summary>Zeroed, 64-byte aligned native buffers that live as long as the process (the model's arenas are
/// allocated once, at load). Tracked so <see cref="Free"/> can release a model's buffers together.</summary>
public static unsafe class NativeBuffers
{
    public static float* Floats(long count) => (float*)Zeroed(count, sizeof(float));

    /// <summary>f16 values (the KV cache).</summary>
    public static Half* Halves(long count) => (Half*)Zeroed(count, sizeof(Half));

    private static void* Zeroed(long count, int size)
    {
        nuint bytes = (nuint)(Math.Max(count, 1) * size);
        void* p = NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(p, bytes);
        return p;
    }

    public static void Free(void* p)
    {
        if (p != null) NativeMemory.AlignedFree(p);
    }
}
