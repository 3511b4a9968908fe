using System.Collections.Concurrent;
using System.Reflection;
using Engine.Kernels.Generated;
using Engine.Runtime.Generated;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace Engine.Kernels.Tests;

/// <summary>Runs generated entry points on ILGPU's CPU accelerator with the launch shape the runtime's generated
/// launcher computes, so the grid rules are exercised too. The simulated device has NVIDIA's geometry (32-lane
/// warps, up to 256 threads a group): the kernels' block sizes and warp-per-row layout run exactly as on the GPU
/// (CPUDevice.Default has 4-lane warps and 16-thread groups, too small for the spec's blocks).</summary>
public sealed class KernelHarness : IDisposable
{
    public static KernelHarness Shared { get; } = new();

    private readonly Context context;
    private readonly ConcurrentDictionary<string, Kernel> kernels = new();
    private readonly object launchLock = new();

    public Accelerator Accelerator { get; }

    private KernelHarness()
    {
        var device = new CPUDevice(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 8, numMultiprocessors: 1);
        context = Context.Create(builder => builder.CPU(device).EnableAlgorithms());
        Accelerator = context.CreateCPUAccelerator(0);
    }

    public MemoryBuffer1D<T, Stride1D.Dense> Upload<T>(T[] data) where T : unmanaged
    {
        var buffer = Accelerator.Allocate1D<T>(Math.Max(1, data.Length));
        if (data.Length > 0) buffer.View.SubView(0, data.Length).CopyFromCPU(data);
        return buffer;
    }

    public MemoryBuffer1D<T, Stride1D.Dense> Allocate<T>(long length) where T : unmanaged
    {
        var buffer = Accelerator.Allocate1D<T>(Math.Max(1, length));
        buffer.MemSetToZero();
        return buffer;
    }

    /// <summary>Launches entry point <paramref name="name"/> with <paramref name="args"/> (ArrayViews and scalars in
    /// spec order) using the generated launcher's shape; returns that shape.</summary>
    public LaunchShape Launch(string name, params object[] args) => LaunchWithBlock(name, 0, args);

    /// <summary>As <see cref="Launch"/>, with the group size of an explicitly grouped kernel replaced by
    /// <paramref name="blockX"/> (0: the launcher's), for bodies that adapt to Group.DimX.</summary>
    public LaunchShape LaunchWithBlock(string name, int blockX, params object[] args) => Run(name, blockX, 0, args);

    /// <summary>As <see cref="Launch"/>, with grid z <paramref name="gridZ"/> in place of the launcher's (the runtime's
    /// split-k GEMMs: Engine.Runtime.Cuda.SplitK).</summary>
    public LaunchShape LaunchWithGridZ(string name, int gridZ, params object[] args) => Run(name, 0, gridZ, args);

    private LaunchShape Run(string name, int blockX, int gridZ, object[] args)
    {
        var entry = Engine.Kernels.Generated.KernelTable.Find(name) ?? throw new ArgumentException("no entry point " + name);
        // Buffers' views are ArrayView1D<T, Dense>; the entry points take their dense base ArrayView<T>.
        args = args.Select(a => a.GetType().GetProperty("BaseView") is { } baseView ? baseView.GetValue(a)! : a).ToArray();
        LaunchShape shape = Shape(name, args, out int extent);
        if (gridZ > 0) shape = shape with { GridZ = (uint)gridZ };
        lock (launchLock)
        {
            var kernel = kernels.GetOrAdd(name, n =>
            {
                var method = typeof(EntryPoints).GetMethod(n, BindingFlags.Public | BindingFlags.Static)!;
                return entry.Implicit ? Accelerator.LoadImplicitlyGroupedKernel(method, entry.BlockSize) : Accelerator.LoadKernel(method);
            });
            if (!shape.IsEmpty)
            {
                if (entry.Implicit) kernel.Launch(Accelerator.DefaultStream, new Index1D(extent), args);
                else
                {
                    // Explicit bodies adapt to Group.DimX; a launcher's group larger than the simulated CPU device
                    // allows (rms_norm's 1024) runs at the device's largest, as its own test names.
                    int block = blockX > 0 ? blockX : Math.Min((int)shape.BlockX, Accelerator.MaxNumThreadsPerGroup);
                    kernel.Launch(Accelerator.DefaultStream,
                        new KernelConfig(new Index3D((int)shape.GridX, (int)shape.GridY, (int)shape.GridZ), new Index3D(block, 1, 1)), args);
                }
            }
            Accelerator.Synchronize();
        }
        return shape;
    }

    /// <summary>The runtime launcher's Create(...).Shape() for these arguments (views become DeviceViews of their
    /// length at address 0: the shape rule depends on scalars only).</summary>
    public static LaunchShape Shape(string name, object[] args, out int extent)
    {
        var type = typeof(Launchers).GetNestedType(name) ?? throw new ArgumentException("no launcher " + name);
        var create = type.GetMethod("Create")!;
        var converted = args.Select(a => a is IArrayView view ? new DeviceView(0, view.Length) : a).ToArray();
        object launcher = create.Invoke(null, converted)!;
        var extentField = type.GetField("Extent");
        extent = extentField == null ? 0 : (int)extentField.GetValue(launcher)!;
        return (LaunchShape)type.GetMethod("Shape")!.Invoke(launcher, null)!;
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        context.Dispose();
    }
}
