using ILGPU;

namespace Engine.Kernels;

/// <summary>Warp and group reductions by shuffles (butterfly: every lane ends with the total). The five steps are
/// written out with constant offsets (16, 8, 4, 2, 1 for the 32 lanes of an NVIDIA warp): ILGPU's Warp.WarpSize is
/// not a compile-time constant in the PTX, so a loop over it stayed a loop in SASS (a compare and a branch a step, the
/// shuffle offset in a register), and ptxas could not interleave the four row sums of a GEMV group
/// (docs/benchmarks.md "Session 7: where the GEMVs lost time to the code, not the memory"). The order of the additions is the loop's, so the sums are the same
/// bit for bit.</summary>
public static class Reduce
{
    /// <summary>Lanes of a warp (NVIDIA's 32; the CPU accelerator of the tests is built with 32-lane warps too), as a
    /// constant: dividing by Warp.WarpSize was an integer division at run time.</summary>
    public const int WarpLanes = 32;

    public static float WarpSum(float value)
    {
        value += Warp.ShuffleXor(value, 16);
        value += Warp.ShuffleXor(value, 8);
        value += Warp.ShuffleXor(value, 4);
        value += Warp.ShuffleXor(value, 2);
        value += Warp.ShuffleXor(value, 1);
        return value;
    }

    public static int WarpSum(int value)
    {
        value += Warp.ShuffleXor(value, 16);
        value += Warp.ShuffleXor(value, 8);
        value += Warp.ShuffleXor(value, 4);
        value += Warp.ShuffleXor(value, 2);
        value += Warp.ShuffleXor(value, 1);
        return value;
    }

    public static float WarpMax(float value)
    {
        value = IntrinsicMath.Max(value, Warp.ShuffleXor(value, 16));
        value = IntrinsicMath.Max(value, Warp.ShuffleXor(value, 8));
        value = IntrinsicMath.Max(value, Warp.ShuffleXor(value, 4));
        value = IntrinsicMath.Max(value, Warp.ShuffleXor(value, 2));
        value = IntrinsicMath.Max(value, Warp.ShuffleXor(value, 1));
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
        int warps = Group.DimX / WarpLanes;
        float total = WarpSum(Warp.LaneIdx < warps ? partials[Warp.LaneIdx] : 0f);
        Group.Barrier();
        return total;
    }
}
