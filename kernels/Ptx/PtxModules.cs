using System.Collections.Frozen;
using System.Reflection;
using Engine.Kernels.Ptx.Generated;

namespace Engine.Kernels.Ptx;

/// <summary>The PTX of every kernel entry point, compiled at build time by kernels/PtxBuild with ILGPU's PTX backend
/// and embedded as resources <c>ptx/&lt;arch&gt;/&lt;EntryPoint&gt;.ptx</c>. Each entry point is its own PTX module
/// (ILGPU emits one module per kernel): load it with cuModuleLoadDataEx and get its function by
/// <see cref="KernelEntryPoint.PtxEntry"/>.</summary>
public static class PtxModules
{
    /// <summary>Targets built: sm_80 (PTX ISA 7.0) and sm_90 (PTX ISA 7.8).</summary>
    public static IReadOnlyList<string> Architectures { get; } = ["sm_80", "sm_90"];

    /// <summary>The entry-point table (name, PTX entry, family, format, grouping, block, argument layout).</summary>
    public static IReadOnlyList<KernelEntryPoint> EntryPoints => KernelTable.All;

    private static readonly Dictionary<string, FrozenDictionary<string, string>> s_loaded = new();

    /// <summary>Entry-point name → PTX module text for <paramref name="arch"/>. Throws ArgumentException for an
    /// architecture that was not built.</summary>
    public static IReadOnlyDictionary<string, string> Get(string arch)
    {
        if (!Architectures.Contains(arch))
            throw new ArgumentException($"no PTX for architecture '{arch}' (built: {string.Join(", ", Architectures)})", nameof(arch));
        lock (s_loaded)
        {
            if (s_loaded.TryGetValue(arch, out var cached)) return cached;
            var assembly = typeof(PtxModules).Assembly;
            var modules = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in KernelTable.All)
                modules[entry.Name] = Read(assembly, $"ptx/{arch}/{entry.Name}.ptx");
            var frozen = modules.ToFrozenDictionary(StringComparer.Ordinal);
            s_loaded[arch] = frozen;
            return frozen;
        }
    }

    /// <summary>The best built architecture for a device of compute capability major.minor (sm_90 for 9.x and
    /// later, sm_80 for 8.x), or null when the device is older than sm_80.</summary>
    public static string? ArchitectureFor(int major, int minor) =>
        major >= 9 ? "sm_90" : major == 8 ? "sm_80" : null;

    private static string Read(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"Engine.Kernels.Ptx: embedded resource {name} is missing (build out of date?)");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
