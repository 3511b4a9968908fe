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

    /// <summary>The warp of this thread in a one-dimensional group (every group here is): the thread's index over 32.
    /// ILGPU's Warp.WarpIdx divides the linear index by the warp size at run time (some thirty SASS instructions).</summary>
    public static int WarpIndex => Group.IdxX >> 5;

    public static float WarpSum(float value)
    {
        value += Warp.ShuffleXor(value, 16);
        value += Warp.ShuffleXor(value, 8);
        value += Warp.ShuffleXor(value, 4);
        value += Warp.ShuffleXor(value, 2);
        value += Warp.ShuffleXor(value, 1);
        return value;
    }

    /// <summary>The warp's sums of four values by a reduce-scatter: lane l returns the sum over the warp of value l / 8
    /// (p0 for lanes 0–7, p1 for 8–15, p2 for 16–23, p3 for 24–31; the eight lanes of a row get the same float). Two
    /// halving steps (lanes 16 apart swap the pair they do not keep, then lanes 8 apart the value) and a butterfly over
    /// the last 8 lanes: six shuffles where four butterflies take twenty. The order of the additions is fixed.</summary>
    public static float WarpSums4(float p0, float p1, float p2, float p3)
    {
        int lane = Warp.LaneIdx;
        bool high = (lane & 16) != 0, odd = (lane & 8) != 0;
        float a = high ? p2 : p0, b = high ? p3 : p1;
        a += Warp.ShuffleXor(high ? p0 : p2, 16);
        b += Warp.ShuffleXor(high ? p1 : p3, 16);
        float keep = odd ? b : a;
        keep += Warp.ShuffleXor(odd ? a : b, 8);
        keep += Warp.ShuffleXor(keep, 4);
        keep += Warp.ShuffleXor(keep, 2);
        keep += Warp.ShuffleXor(keep, 1);
        return keep;
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
        if (Warp.LaneIdx == 0) partials[WarpIndex] = value;
        Group.Barrier();
        // Every warp sums the partials itself (a shuffle reduction instead of a serial loop of shared loads).
        int warps = Group.DimX / WarpLanes;
        float total = WarpSum(Warp.LaneIdx < warps ? partials[Warp.LaneIdx] : 0f);
        Group.Barrier();
        return total;
    }
}
