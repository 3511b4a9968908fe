using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Engine.Kernels.Formats;
using Engine.Kernels.Ptx;
using Engine.Runtime.Generated;
using Xunit;

namespace Engine.Kernels.Tests;

/// <summary>The runtime's generated launchers against the PTX that PtxBuild compiled: every entry point of every
/// architecture has the launcher's entry name, and its .param list (order, size, alignment, name) packs to exactly
/// the launcher struct's field offsets and argument-block size.</summary>
public partial class PtxAbiTests
{
    public static TheoryData<string> Architectures() => new(PtxModules.Architectures);

    [GeneratedRegex(@"^\s*\.param\s+(?:\.align\s+(\d+)\s+)?\.(b8|b16|b32|b64|u32|u64|s32|f32)\s+(\w+)(?:\[(\d+)\])?", RegexOptions.Multiline)]
    private static partial Regex ParamLine();

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Launcher_layouts_match_the_compiled_ptx_parameters(string arch)
    {
        var modules = PtxModules.Get(arch);
        Assert.Equal(Engine.Runtime.Generated.KernelTable.All.Count, modules.Count);
        foreach (var entry in Engine.Runtime.Generated.KernelTable.All)
        {
            string ptx = modules[entry.Name];
            var launcher = typeof(Launchers).GetNestedType(entry.Name)!;
            Assert.Equal(entry.PtxEntry, (string)launcher.GetField("PtxEntry")!.GetValue(null)!);

            int open = ptx.IndexOf(".entry " + entry.PtxEntry + "(", StringComparison.Ordinal);
            Assert.True(open >= 0, $"{arch}/{entry.Name}: no .entry {entry.PtxEntry}");
            int close = ptx.IndexOf(')', open);
            var ps = ParamLine().Matches(ptx.Substring(open, close - open)).ToList();
            Assert.Equal(entry.Params.Count, ps.Count);

            int offset = 0;
            for (int i = 0; i < ps.Count; i++)
            {
                var m = ps[i];
                int elementBytes = m.Groups[2].Value switch { "b8" => 1, "b16" => 2, "b64" or "u64" => 8, _ => 4 };
                int size = elementBytes * (m.Groups[4].Success ? int.Parse(m.Groups[4].Value) : 1);
                int align = m.Groups[1].Success ? int.Parse(m.Groups[1].Value) : elementBytes;
                offset = (offset + align - 1) / align * align;
                var expected = entry.Params[i];
                string where = $"{arch}/{entry.Name} param {i} ({m.Value.Trim()})";
                // ILGPU names PTX params _<C# name>_<id>; the C# names are the spec's in camelCase.
                Assert.True(m.Groups[3].Value.StartsWith("_" + CamelCase(expected.Name == "extent" ? "index" : expected.Name) + "_", StringComparison.Ordinal), where);
                Assert.Equal((expected.Offset, expected.Size, expected.Alignment), (offset, size, align));
                string field = expected.Name == "extent" ? "Extent" : PascalCase(expected.Name);
                Assert.Equal(offset, (int)Marshal.OffsetOf(launcher, field));
                offset += size;
            }
            Assert.Equal(offset, (int)launcher.GetField("Size")!.GetValue(null)!);
            Assert.Equal(offset, entry.ArgumentBytes);
            Assert.True(Marshal.SizeOf(launcher) >= offset);
        }
    }

    [Fact]
    public void Every_entry_point_has_ptx_for_every_architecture_and_the_tables_agree()
    {
        var kernels = Engine.Kernels.Generated.KernelTable.All.Select(e => e.Name);
        Assert.Equal(kernels, PtxModules.EntryPoints.Select(e => e.Name));
        Assert.Equal(kernels, Engine.Runtime.Generated.KernelTable.All.Select(e => e.Name));
        Assert.Equal(kernels, Enum.GetNames<KernelId>());
        foreach (var arch in PtxModules.Architectures)
            foreach (var e in PtxModules.EntryPoints)
                Assert.Contains(".entry " + e.PtxEntry + "(", PtxModules.Get(arch)[e.Name]);
        Assert.Throws<ArgumentException>(() => PtxModules.Get("sm_70"));
    }

    /// <summary>The runtime launches every kernel with programmatic dependent launch on sm_90, so every sm_90 entry must
    /// wait for the previous kernel before it reads (griddepcontrol.wait, kernels/Pdl.cs) and let the next one launch
    /// (griddepcontrol.launch_dependents); the GEMM entries once lacked the wait and read their inputs early. The sm_80
    /// modules have neither (the instructions need sm_90).</summary>
    [Fact]
    public void Every_sm90_entry_waits_for_the_previous_kernel()
    {
        foreach (var e in PtxModules.EntryPoints)
        {
            string ptx = PtxModules.Get("sm_90")[e.Name];
            Assert.True(ptx.Contains("griddepcontrol.wait", StringComparison.Ordinal), e.Name + ": no griddepcontrol.wait");
            Assert.True(ptx.Contains("griddepcontrol.launch_dependents", StringComparison.Ordinal), e.Name + ": no launch_dependents");
            Assert.DoesNotContain("griddepcontrol", PtxModules.Get("sm_80")[e.Name]);
        }
    }

    /// <summary>The int8 GEMVs' sm_90 modules stream their loads with the L2 evict-first policy
    /// (Gemv.StreamsEvictFirst): one createpolicy and every 16-bit, 32-bit and vector global load with it (the only
    /// other is gemv_add's f32 residual); every other entry, and every sm_80 module (PTX ISA 7.0 has no createpolicy),
    /// has none.</summary>
    [Fact]
    public void The_int8_gemv_loads_are_evict_first_on_sm90()
    {
        int marked = 0;
        foreach (var e in PtxModules.EntryPoints)
        {
            string ptx = PtxModules.Get("sm_90")[e.Name];
            Assert.DoesNotContain("createpolicy", PtxModules.Get("sm_80")[e.Name]);
            if (!Gemv.StreamsEvictFirst(e.Family, e.Format, e.F32Activations))
            {
                Assert.DoesNotContain("createpolicy", ptx);
                continue;
            }
            marked++;
            Assert.Single(Regex.Matches(ptx, "createpolicy.fractional.L2::evict_first.b64"));
            var loads = Regex.Matches(ptx, @"\bld\.global\.[^\s]+[^;]*;").Select(m => m.Value).ToList();
            Assert.Contains(loads, l => l.StartsWith("ld.global.L2::cache_hint.", StringComparison.Ordinal));
            foreach (var l in loads)
                Assert.True(l.StartsWith("ld.global.L2::cache_hint.", StringComparison.Ordinal)
                    ? l.EndsWith(", %rdevict;", StringComparison.Ordinal)
                    : l.StartsWith("ld.global.f32", StringComparison.Ordinal), $"{e.Name}: {l}");
        }
        Assert.Equal(PtxModules.EntryPoints.Count(e => e.Family.StartsWith("gemv", StringComparison.Ordinal) && !e.F32Activations
            && e.Format is not ("F32" or "F16" or "BF16")), marked);
    }

    /// <summary>Register caps (.maxnreg, written by PtxBuild between an entry's parameters and its body): each entry's
    /// is RegisterCaps.Of's, on both targets, and no other entry has one; that rule caps the int8 GEMVs (64 for Q8_0's
    /// gemv, 72 for its gemv_swiglu, none for its f32act entry) and the short attention kernels at 128 (two groups of 256
    /// threads an SM), and the GEMMs of every format at 128 (two groups an SM).</summary>
    [Fact]
    public void Register_caps_are_the_gemvs_the_gemms_and_the_short_attentions()
    {
        foreach (var target in new[] { "sm_80", "sm_90" })
            foreach (var e in PtxModules.EntryPoints)
            {
                int want = RegisterCaps.Of(e.Family, e.Format, e.F32Activations);
                var caps = Regex.Matches(PtxModules.Get(target)[e.Name], @"\.maxnreg (\d+)").Select(m => int.Parse(m.Groups[1].Value)).ToList();
                Assert.True(want == 0 ? caps.Count == 0 : caps.SequenceEqual([want]), $"{target} {e.Name}: caps [{string.Join(", ", caps)}], want {want}");
            }
        Assert.Equal(128, RegisterCaps.Of("attention_quant_short", null, false));
        Assert.Equal(128, RegisterCaps.Of("attention_short", null, false));
        Assert.Equal(0, RegisterCaps.Of("attention_quant", null, false));
        Assert.Equal(64, RegisterCaps.Of("gemv", "Q8_0", false));
        Assert.Equal((72, 72, 80, 0, 64), (RegisterCaps.Of("gemv_swiglu", "Q4_K", false), RegisterCaps.Of("gemv_swiglu", "Q8_0", false),
            RegisterCaps.Of("gemv_swiglu", "Q6_K", false), RegisterCaps.Of("gemv_swiglu", "Q4_0", false), RegisterCaps.Of("gemv_add", "Q4_K", false)));
        Assert.Equal((80, 64, 64), (RegisterCaps.Of("gemv", "Q6_K", false), RegisterCaps.Of("gemv_add", "Q6_K", false), RegisterCaps.Of("gemv_qkv", "Q6_K", false)));
        Assert.Equal(0, RegisterCaps.Of("gemv", "Q8_0", true));
        Assert.Equal((128, 128, 128, 128), (RegisterCaps.Of("gemm", "Q4_K", false), RegisterCaps.Of("gemm_add", "Q6_K", false),
            RegisterCaps.Of("gemm_swiglu", "Q4_0", false), RegisterCaps.Of("gemm_qkv", "Q4_K/Q6_K", false)));
        Assert.Equal((128, 128, 128), (RegisterCaps.Of("gemm_swiglu", "Q8_0", false), RegisterCaps.Of("gemm", "Q8_0", false),
            RegisterCaps.Of("gemm_qkv", "Q8_0", false)));
    }

    /// <summary>The GEMMs read their fragments by ldmatrix as their formats say (IInt8Tiles.MatrixLoads: eight a module
    /// for A, eight for B, two a group of 32 each, four groups a stage; a q/k/v entry of two formats has both's), on
    /// both targets, and those with any name their shared tiles as ILGPU declares them (__shared_alloca0 the weights',
    /// 1 the activations', at Gemm's tile sizes); no other entry has ldmatrix.</summary>
    [Fact]
    public void The_gemms_read_their_fragments_by_ldmatrix_as_their_formats_say()
    {
        var bits = new Dictionary<string, int>
        {
            ["Q8_0"] = default(Q8_0).MatrixLoads, ["Q4_0"] = default(Q4_0).MatrixLoads, ["Q4_K"] = default(Q4_K).MatrixLoads,
            ["Q5_K"] = default(Q5_K).MatrixLoads, ["Q6_K"] = default(Q6_K).MatrixLoads,
        };
        Assert.Equal((1, 1, 1, 3, 1), (bits["Q8_0"], bits["Q4_0"], bits["Q4_K"], bits["Q5_K"], bits["Q6_K"]));
        int withMatrices = 0;
        foreach (var target in new[] { "sm_80", "sm_90" })
            foreach (var e in PtxModules.EntryPoints)
            {
                string ptx = PtxModules.Get(target)[e.Name];
                int n = Regex.Matches(ptx, @"\bldmatrix\.sync\.aligned\.m8n8\.x4\.shared\.b16\b").Count;
                int want = 0, any = 0;
                if (e.Family.StartsWith("gemm", StringComparison.Ordinal) && !e.F32Activations && e.Format is not null)
                    foreach (var f in e.Format.Split('/'))
                    {
                        int b = bits.GetValueOrDefault(f);
                        want += 8 * ((b & 1) + ((b >> 1) & 1));
                        any |= b;
                    }
                Assert.True(n == want, $"{target} {e.Name}: {n} ldmatrix, want {want}");
                if (want == 0) continue;
                withMatrices++;
                Assert.Contains($"__shared_alloca0[{Gemm.TileWBytes}];", ptx);
                Assert.Contains($"__shared_alloca1[{Gemm.TileXBytes}];", ptx);
                Assert.Equal((any & 1) != 0, ptx.Contains("mov.u64 t, __shared_alloca0;", StringComparison.Ordinal));   // A's tile
                Assert.Equal((any & 2) != 0, ptx.Contains("mov.u64 t, __shared_alloca1;", StringComparison.Ordinal));   // B's tile
            }
        // (gemm, gemm_add, gemm_swiglu, gemm_qkv × the five int8-tile formats + the q/k/v pairs Q4_K/Q5_K, Q4_K/Q6_K,
        // Q5_K/Q6_K) × two targets
        Assert.Equal((4 * 5 + 3) * 2, withMatrices);
    }

    [Fact]
    public void Cpu_dispatch_keys_name_family_and_format()
    {
        Assert.Equal(new CpuDispatchKey(KernelFamilyId.Gemv, KernelFormat.Q4_K), Launchers.Gemv_Q4_K.CpuKey);
        Assert.Equal(new CpuDispatchKey(KernelFamilyId.RmsNorm, KernelFormat.None), Launchers.RmsNorm.CpuKey);
        Assert.Equal(Enum.GetValues<KernelId>().Length, Launchers.CpuKeys.Length);
        Assert.Equal(Launchers.Gemv_Q8_0.CpuKey, Launchers.CpuKeys[(int)KernelId.Gemv_Q8_0]);
        // The f32act variant: same family and format, f32 activations (the CPU matmul's dequantize-and-dot path).
        Assert.Equal(new CpuDispatchKey(KernelFamilyId.GemvAdd, KernelFormat.Q6_K, F32Activations: true), Launchers.GemvAdd_Q6_K_F32Act.CpuKey);
        Assert.Equal(Launchers.GemvSwiGlu_Q4_0_F32Act.CpuKey, Launchers.CpuKeys[(int)KernelId.GemvSwiGlu_Q4_0_F32Act]);
        Assert.False(Launchers.CpuKeys[(int)KernelId.Gemv_Q4_0].F32Activations);
    }

    [Fact]
    public void Launch_shapes_follow_the_spec_grid_rules()
    {
        var gemv = Launchers.Gemv_Q8_0.Create(default, default, default, default, rows: 4097, cols: 4096, nTokens: 5).Shape();
        Assert.Equal(new LaunchShape(1025, 2, 1, 128), gemv); // 4 rows a group, 4 tokens a group
        var rope = Launchers.Rope.Create(default, default, default, default, 32, 8, 128, 3, 500000f, 1f);
        Assert.Equal(3 * 40 * 64, rope.Extent);
        Assert.Equal(new LaunchShape(30, 1, 1, 256), rope.Shape());
        Assert.True(Launchers.Add.Create(default, default, 0).Shape().IsEmpty);
    }

    private static string PascalCase(string snake) => string.Concat(snake.Split('_').Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    private static string CamelCase(string snake) { var p = PascalCase(snake); return char.ToLowerInvariant(p[0]) + p[1..]; }
}
