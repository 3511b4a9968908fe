using System.Linq;
using System.Text;
using Engine.Generators.Model;

namespace Engine.Generators;

public sealed partial class LlamaGraphGenerator
{
    internal static partial class Emitter
    {
        /// <summary>Launchers for the runtime (no ILGPU): per entry point an explicit-layout struct that is the PTX
        /// argument block (pass its address through CU_LAUNCH_PARAM_BUFFER_POINTER and its Size, the bytes the PTX
        /// parameters span, through CU_LAUNCH_PARAM_BUFFER_SIZE), a Create factory that fills it (computing an implicit kernel's extent),
        /// the grid/block rule, and the CPU-backend dispatch key.</summary>
        private static string Launchers(GraphSpec spec, string ns)
        {
            var entries = EntryPointsOf(spec);
            var sb = new StringBuilder(Header);
            sb.Append("using System.Runtime.InteropServices;\n\n");
            sb.Append("namespace ").Append(ns).Append(";\n\n");
            sb.Append("/// <summary>ILGPU's ArrayView&lt;T&gt; as a kernel parameter: device pointer and length in elements.</summary>\n");
            sb.Append("[StructLayout(LayoutKind.Sequential)]\n");
            sb.Append("public readonly record struct DeviceView(ulong Pointer, long Length)\n{\n");
            sb.Append("    public static DeviceView Empty => default;\n}\n\n");
            sb.Append("/// <summary>cuLaunchKernel's grid and block. A zero grid dimension means there is nothing to launch.</summary>\n");
            sb.Append("public readonly record struct LaunchShape(uint GridX, uint GridY, uint GridZ, uint BlockX)\n{\n");
            sb.Append("    public bool IsEmpty => GridX == 0 || GridY == 0 || GridZ == 0;\n}\n\n");
            sb.Append("/// <summary>Kernel families of the spec.</summary>\npublic enum KernelFamilyId\n{\n");
            foreach (var k in spec.Kernels) sb.Append("    ").Append(Pascal(k.Name)).Append(",\n");
            sb.Append("}\n\n");
            sb.Append("/// <summary>Weight formats an entry point is specialised for; None for format-free families.</summary>\npublic enum KernelFormat\n{\n    None,\n");
            foreach (var f in spec.Formats) sb.Append("    ").Append(f).Append(",\n");
            sb.Append("}\n\n");
            sb.Append("/// <summary>What the CPU backend switches on to run the same op; F32Activations: the f32act variant (the matmul\n");
            sb.Append("/// reads f32 activations where the format's own entry reads int8 ones).</summary>\n");
            sb.Append("public readonly record struct CpuDispatchKey(KernelFamilyId Family, KernelFormat Format, bool F32Activations = false);\n\n");
            sb.Append("/// <summary>Every entry point, in KernelTable order.</summary>\npublic enum KernelId\n{\n");
            foreach (var e in entries) sb.Append("    ").Append(e.Name).Append(",\n");
            sb.Append("}\n\n");
            sb.Append("/// <summary>One launcher per entry point.</summary>\npublic static class Launchers\n{\n");
            sb.Append("    public static int CeilDiv(int a, int b) => (a + b - 1) / b;\n\n");
            sb.Append("    /// <summary>The CPU dispatch key of every entry point, indexed by KernelId.</summary>\n");
            sb.Append("    public static global::System.ReadOnlySpan<CpuDispatchKey> CpuKeys => s_cpuKeys;\n\n");
            sb.Append("    private static readonly CpuDispatchKey[] s_cpuKeys =\n    [\n");
            foreach (var e in entries)
                sb.Append("        new(KernelFamilyId.").Append(Pascal(e.Kernel.Name)).Append(", KernelFormat.").Append(e.CpuFormat)
                  .Append(e.F32Activations ? ", F32Activations: true" : "").Append("),\n");
            sb.Append("    ];\n\n");
            sb.Append("    /// <summary>The launch shape of an argument block packed by parameter offsets (as the runtime packs a plan's\n");
            sb.Append("    /// arguments): the block read as the entry's struct, its grid rule applied. The span holds at least the struct's size.</summary>\n");
            sb.Append("    public static LaunchShape ShapeOf(KernelId id, global::System.ReadOnlySpan<byte> arguments) => id switch\n    {\n");
            foreach (var e in entries)
                sb.Append("        KernelId.").Append(e.Name).Append(" => MemoryMarshal.Read<").Append(e.Name).Append(">(arguments).Shape(),\n");
            sb.Append("        _ => throw new global::System.ArgumentOutOfRangeException(nameof(id), id, \"no such kernel\"),\n    };\n");
            foreach (var e in entries) Launcher(sb, e);
            sb.Append("}\n");
            return sb.ToString();
        }

        private static void Launcher(StringBuilder sb, EntryPoint e)
        {
            var k = e.Kernel;
            sb.Append('\n');
            sb.Append("    /// <summary>").Append(e.PtxEntry).Append(": ").Append(k.Name).Append(e.Format == null ? "" : " for " + e.Format)
              .Append(e.F32Activations ? " with f32 activations" : "")
              .Append(", block ").Append(Literal(k.Block)).Append(k.Implicit ? ", grid ceil_div(extent, block), extent " + k.Extent : ", grid (" + string.Join(", ", k.Grid) + ")")
              .Append(".</summary>\n");
            sb.Append("    [StructLayout(LayoutKind.Explicit, Size = ").Append(Literal(e.StructBytes)).Append(")]\n");
            sb.Append("    public struct ").Append(e.Name).Append("\n    {\n");
            sb.Append("        public const KernelId Id = KernelId.").Append(e.Name).Append(";\n");
            sb.Append("        public const string PtxEntry = ").Append(Literal(e.PtxEntry)).Append(";\n");
            sb.Append("        public const int Size = ").Append(Literal(e.ArgumentBytes)).Append(";\n");
            sb.Append("        public const int BlockSize = ").Append(Literal(k.Block)).Append(";\n");
            sb.Append("        public static CpuDispatchKey CpuKey => new(KernelFamilyId.").Append(Pascal(k.Name)).Append(", KernelFormat.")
              .Append(e.CpuFormat).Append(e.F32Activations ? ", F32Activations: true" : "").Append(");\n\n");
            foreach (var p in e.Params)
                sb.Append("        [FieldOffset(").Append(Literal(p.Offset)).Append(")] public ").Append(LaunchType(p.Type)).Append(' ')
                  .Append(Pascal(p.Name)).Append(";\n");
            sb.Append('\n');
            var args = k.Args.Select(a => LaunchType(a.Type) + " " + Identifier(Camel(a.Name))).ToList();
            sb.Append("        public static ").Append(e.Name).Append(" Create(").Append(string.Join(", ", args)).Append(") => new()\n        {\n");
            if (k.Implicit)
                sb.Append("            Extent = ").Append(Expression(k.Extent!, n => Identifier(Camel(n)))).Append(",\n");
            foreach (var a in k.Args)
                sb.Append("            ").Append(Pascal(a.Name)).Append(" = ").Append(Identifier(Camel(a.Name))).Append(",\n");
            sb.Append("        };\n\n");
            string x, y = "1", z = "1";
            if (k.Implicit) x = "CeilDiv(Extent, " + Literal(k.Block) + ")";
            else
            {
                x = Expression(k.Grid[0], Pascal);
                if (k.Grid.Count > 1) y = Expression(k.Grid[1], Pascal);
                if (k.Grid.Count > 2) z = Expression(k.Grid[2], Pascal);
            }
            sb.Append("        public readonly LaunchShape Shape() => new((uint)(").Append(x).Append("), (uint)(").Append(y).Append("), (uint)(")
              .Append(z).Append("), ").Append(Literal(k.Block)).Append(");\n");
            sb.Append("    }\n");
        }

        private static string LaunchType(string type) => type switch
        {
            "extent" => "int",
            "i32" => "int",
            "f32" => "float",
            _ => "DeviceView",
        };

        private static string Identifier(string name) => name is "in" or "out" or "ref" or "params" or "base" or "fixed" ? "@" + name : name;
    }
}
