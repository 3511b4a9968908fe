using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Engine.Kernels;

/// <summary>Programmatic dependent launch (Hopper, PTX ISA 7.8 griddepcontrol; CUDA programming guide
/// "Programmatic Dependent Launch and Synchronization"). The runtime launches the kernels of a resident plan's step
/// with the programmatic-serialization attribute, so kernel N+1 may be scheduled while kernel N still runs. Every
/// entry point first lets its own dependents launch (<see cref="Trigger"/>, emitted by the generator); every body
/// calls <see cref="Wait"/> before it reads or writes an activation, so the order of memory effects stays the
/// stream's. What overlaps is the next kernel's launch and block scheduling and, in the matmuls, the first loads of
/// its weights (<see cref="Touch"/>: weights are never written by a step), with the tail of the running kernel.
/// Every grid waits, so completion is transitive down the chain. The sm_80 PTX has griddepcontrol removed
/// (PtxBuild); a launch without the attribute returns from the wait at once; on ILGPU's CPU accelerator all three
/// are no-ops.</summary>
public static class Pdl
{
    /// <summary>Allows the next kernel in the stream to launch (griddepcontrol.launch_dependents).</summary>
    public static void Trigger()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit("griddepcontrol.launch_dependents;");
    }

    /// <summary>Blocks until the kernels before this one have completed and their writes are visible
    /// (griddepcontrol.wait).</summary>
    public static void Wait()
    {
        if (CudaAsm.IsSupported) CudaAsm.Emit("griddepcontrol.wait;");
    }

    /// <summary>The group's threads load one word of every 128-byte line of bytes [start, start + bytes) of
    /// <paramref name="w"/> (a weight range no kernel writes) and return them XOR-ed, so the lines are on their way to
    /// L1/L2 before <see cref="Wait"/>; the caller keeps the loads alive with <see cref="Keep"/>. (ILGPU gives a
    /// kernel no address to hand a prefetch instruction, so these are plain loads.)</summary>
    public static uint Touch(ArrayView<byte> w, long start, long bytes)
    {
        uint touched = 0;
        if (!CudaAsm.IsSupported) return touched;
        var words = w.Cast<uint>();
        long first = (start + 3) >> 2, end = (start + bytes) >> 2;
        for (long word = first + 32L * Group.IdxX; word < end; word += 32L * Group.DimX)
            touched ^= words[word];
        return touched;
    }

    /// <summary>Uses <paramref name="touched"/> in a store that never happens (<paramref name="rows"/> is positive),
    /// which the compilers cannot prove, so the loads of <see cref="Touch"/> stay.</summary>
    public static void Keep(uint touched, int rows, ArrayView<float> y)
    {
        if (rows < 0 && touched == 0) y[0] = 0;
    }
}
