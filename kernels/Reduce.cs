using ILGPU;

namespace Engine.Kernels;

/// <summary>Warp and group reductions by shuffles (butterfly: every lane ends with the total).</summary>
public static class Reduce
{
    public static float WarpSum(float value)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            value += Warp.ShuffleXor(value, offset);
        return value;
    }

    public static int WarpSum(int value)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            value += Warp.ShuffleXor(value, offset);
        return value;
    }

    public static float WarpMax(float value)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset /= 2)
            value = IntrinsicMath.Max(value, Warp.ShuffleXor(value, offset));
        return value;
    }

    /// <summary>Sum over the whole group; every thread gets it. <paramref name="partials"/> is shared memory of at
    /// least Group.DimX / Warp.WarpSize floats. All threads of the group must call it.</summary>
    public static float GroupSum(float value, ArrayView<float> partials)
    {
        value = WarpSum(value);
        if (Warp.LaneIdx == 0) partials[Warp.WarpIdx] = value;
        Group.Barrier();
        // Every warp sums the partials itself (a shuffle reduction instead of a serial loop of shared loads).
        int warps = Group.DimX / Warp.WarpSize;
        float total = WarpSum(Warp.LaneIdx < warps ? partials[Warp.LaneIdx] : 0f);
        Group.Barrier();
        return total;
    }
}
