using System.Reflection;
using Engine.Kernels.Generated;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

// ptxbuild OUTDIR: compiles every entry point of KernelTable with ILGPU's PTX backend for each target below and
// writes OUTDIR/<arch>/<EntryPoint>.ptx. Any failure prints one line and exits 1, failing the build.

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: PtxBuild OUTDIR");
    return 2;
}
string outDir = Path.GetFullPath(args[0]);

// sm_80 with PTX ISA 7.0 (A100, RTX 30xx) and sm_90 with ISA 7.8 (H100/H200). ILGPU writes ".target sm_80" for
// both; the driver JITs the module for the actual device (DESIGN.md "ILGPU facts").
var targets = new (string Name, CudaArchitecture Arch, CudaInstructionSet Isa)[]
{
    ("sm_80", CudaArchitecture.SM_80, CudaInstructionSet.ISA_70),
    ("sm_90", CudaArchitecture.SM_90, CudaInstructionSet.ISA_78),
};

using var context = Context.Create(builder => builder.Optimize(OptimizationLevel.O2).EnableAlgorithms());
int written = 0;
foreach (var (name, arch, isa) in targets)
{
    using var backend = new PTXBackend(context, new CudaCapabilityContext(arch), arch, isa, null);
    string dir = Path.Combine(outDir, name);
    Directory.CreateDirectory(dir);
    foreach (var entry in KernelTable.All)
    {
        var method = typeof(EntryPoints).GetMethod(entry.Name, BindingFlags.Public | BindingFlags.Static);
        if (method == null)
        {
            Console.Error.WriteLine($"PtxBuild: error: entry point {entry.Name} is in KernelTable but not in EntryPoints");
            return 1;
        }
        string ptx;
        try
        {
            var description = entry.Implicit
                ? EntryPointDescription.FromImplicitlyGroupedKernel(method)
                : EntryPointDescription.FromExplicitlyGroupedKernel(method);
            var compiled = (PTXCompiledKernel)backend.Compile(description, KernelSpecialization.Empty);
            ptx = compiled.PTXAssembly;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"PtxBuild: error: {entry.Name} for {name} failed to compile: {e.GetType().Name}: {e.Message}{(e.InnerException != null ? " (" + e.InnerException.Message + ")" : "")}");
            if (Environment.GetEnvironmentVariable("PTXBUILD_DEBUG") == "1") Console.Error.WriteLine(e);
            return 1;
        }
        if (!ptx.Contains(".entry " + entry.PtxEntry, StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"PtxBuild: error: {entry.Name} for {name}: PTX has no entry {entry.PtxEntry}");
            return 1;
        }
        // Gemm's ldmatrix addresses name its shared tiles as ILGPU names them, by allocation order (Gemm.TileW/TileX).
        if (ptx.Contains("mov.u64 t, __shared_alloca", StringComparison.Ordinal)
            && !(ptx.Contains($"__shared_alloca0[{Engine.Kernels.Gemm.TileWBytes}];", StringComparison.Ordinal)
                 && ptx.Contains($"__shared_alloca1[{Engine.Kernels.Gemm.TileXBytes}];", StringComparison.Ordinal)))
        {
            Console.Error.WriteLine($"PtxBuild: error: {entry.Name} for {name}: __shared_alloca0/1 are not the GEMM's W and X tiles ({Engine.Kernels.Gemm.TileWBytes} and {Engine.Kernels.Gemm.TileXBytes} bytes)");
            return 1;
        }
        ptx = ForTarget(ptx, name);
        if (name == "sm_90" && Engine.Kernels.Gemv.StreamsEvictFirst(entry.Family, entry.Format, entry.F32Activations))
            ptx = EvictFirst(ptx, entry.PtxEntry);
        int maxRegisters = Engine.Kernels.RegisterCaps.Of(entry.Family, entry.Format, entry.F32Activations);
        if (maxRegisters > 0)
        {
            // .maxnreg goes between the entry's parameter list and its body (PTX ISA "Performance-Tuning Directives").
            int entryAt = ptx.IndexOf(".entry " + entry.PtxEntry, StringComparison.Ordinal);
            int bodyAt = ptx.IndexOf("\n)\n{", entryAt, StringComparison.Ordinal);
            if (bodyAt < 0)
            {
                Console.Error.WriteLine($"PtxBuild: error: {entry.Name} for {name}: no entry body for .maxnreg");
                return 1;
            }
            ptx = ptx.Insert(bodyAt + 3, $".maxnreg {maxRegisters}\n");
        }
        string file = Path.Combine(dir, entry.Name + ".ptx");
        File.WriteAllText(file + ".part", ptx);
        File.Move(file + ".part", file, overwrite: true);
        written++;
    }
}
Console.WriteLine($"PtxBuild: {written} PTX modules ({KernelTable.All.Count} entry points × {targets.Length} targets) in {outDir}");
return 0;

// The int8 GEMVs' 16-bit, 32-bit and vector loads from global memory (the weights, their f16 scales and the 8-bit
// activations; not the f32 residual of gemv_add) with an L2 evict-first policy: PTX ISA 7.4's createpolicy and ld's
// .L2::cache_hint (sm_80 and later; the sm_80 modules are ISA 7.0, so sm_90 only). The weights are read once a token,
// 4.6-8 GB of them through a 50-60 MB L2; marked first to go, they leave the rest of L2 (norm weights, activations,
// KV cache) to the other kernels (Gemv.StreamsEvictFirst has the measurement).
static string EvictFirst(string ptx, string entry)
{
    int entryAt = ptx.IndexOf(".entry " + entry, StringComparison.Ordinal);
    int bodyAt = ptx.IndexOf("\n)\n{", entryAt, StringComparison.Ordinal);
    int firstParam = bodyAt < 0 ? -1 : ptx.IndexOf("\tld.param", bodyAt, StringComparison.Ordinal);
    if (firstParam < 0) throw new InvalidOperationException($"{entry}: no entry body to give the evict-first policy");
    // The policy is made once, before the body's first instruction (after its declarations), in a register of its own.
    ptx = ptx.Insert(firstParam, "\tcreatepolicy.fractional.L2::evict_first.b64 %rdevict, 1.0;\n");
    ptx = ptx.Insert(bodyAt + 4, "\n\t.reg .b64 %rdevict;\n");
    return System.Text.RegularExpressions.Regex.Replace(ptx, @"\bld\.global\.(v4\.b32|v2\.b32|b32|b16)(\s[^;]*);",
        m => "ld.global.L2::cache_hint." + m.Groups[1].Value + m.Groups[2].Value + ", %rdevict;");
}

// ILGPU 1.5.3 writes ".target sm_80" for every architecture. The sm_90 modules say sm_90, which griddepcontrol
// (Pdl.Begin, programmatic dependent launch) requires; the sm_80 modules drop those instructions (no such launch
// before Hopper: kernels there are ordered by the stream alone).
static string ForTarget(string ptx, string target)
{
    if (target == "sm_90") return ptx.Replace(".target sm_80", ".target sm_90", StringComparison.Ordinal);
    var lines = ptx.Split('\n').Where(l => !l.TrimStart().StartsWith("griddepcontrol.", StringComparison.Ordinal));
    return string.Join('\n', lines);
}
