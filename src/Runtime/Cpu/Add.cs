using System.Runtime.Intrinsics;

namespace Engine.Runtime.Cpu;

/// <summary>x += y, the residual connection (ggml_add).</summary>
public static unsafe class Add
{
    public static void InPlace(float* x, float* y, long count)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= count; i += 8)
                (Vector256.Load(x + i) + Vector256.Load(y + i)).Store(x + i);
        for (; i < count; i++) x[i] += y[i];
    }
}
