using ILGPU;

namespace Engine.Kernels;

/// <summary>Residual add in place: x += y.</summary>
public static class Add
{
    public static void Run(Index1D index, ArrayView<float> x, ArrayView<float> y, int n)
    {
        Pdl.Wait();
        x[index] = x[index] + y[index];
    }
}
