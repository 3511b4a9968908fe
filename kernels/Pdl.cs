using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Engine.Kernels;

/// <summary>Programmatic dependent launch (Hopper, PTX ISA 7.8 griddepcontrol; CUDA programming guide
/// "Programmatic Dependent Launch and Synchronization"). The runtime launches the kernels of a resident plan's step
/// with the programmatic-serialization attribute (src/Runtime/Cuda/CudaModel.cs says which), so kernel N+1 may be
/// scheduled while kernel N still runs. Every entry point first lets its own dependents launch (<see cref="Trigger"/>,
/// emitted by the generator); every body calls <see cref="Wait"/> before it writes anything or reads what a kernel of
/// the step writes, so the order of memory effects stays the stream's. What overlaps is the next kernel's launch and
/// block scheduling with the tail of the running kernel, and the reads of what no kernel of the step writes where a
/// body does them before the wait (weights, the step's positions, KV cache rows of earlier steps: Attention, RmsNorm,
/// RopeKvStore, and the weights of gemv_add and gemv_qkv, Gemv.Rows). Positions may be read there because they are
/// written before the step's first kernel (by the host's copy, or in a greedy step by the previous step's argmax, whose
/// graph completed before this one started) and a launch with the attribute starts only once every block of the kernel
/// before it has started. Every grid waits, so completion is transitive down the chain. The sm_80 PTX has griddepcontrol
/// removed (PtxBuild); a launch without the attribute returns from the wait at once; on ILGPU's CPU accelerator all
/// three are no-ops.</summary>
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
}
