using System.Runtime.InteropServices;

namespace Engine.Runtime.Cpu;

/// <summary>Zeroed, 64-byte aligned native buffers that live as long as the process (the model's arenas are
/// allocated once, at load). Tracked so <see cref="Free"/> can release a model's buffers together.</summary>
public static unsafe class NativeBuffers
{
    public static float* Floats(long count)
    {
        nuint bytes = (nuint)(Math.Max(count, 1) * sizeof(float));
        var p = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(p, bytes);
        return p;
    }

    public static void Free(float* p)
    {
        if (p != null) NativeMemory.AlignedFree(p);
    }
}
