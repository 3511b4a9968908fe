using System.Buffers.Binary;
using System.Globalization;
using Engine.Kernels.Ptx;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;
using Engine.Runtime.Cuda;
using Engine.Runtime.Generated;
using static Engine.Runtime.Cuda.CudaDriver;

namespace Engine.GpuSelfTest;

/// <summary>gpu-selftest [--no-bench] [--bench-only] [--gemv-only] [--registers] [--formats F,…] [--shape RxC]: on the GPU machine, loads every embedded PTX module for the
/// device's architecture through the driver API, runs every kernel family × format on seeded random inputs (outputs
/// poisoned with NaN first) against the float64 reference (WeightFormat's dequantisers, scalar references here),
/// scored by NMSE with per-op limits as in llama.cpp's test-backend-ops, then measures GEMV bandwidth per format at
/// the 8B shapes against BandwidthProbe's device copy rate. Exit 0 only when every module loads and every case
/// passes. Launches go through the same argument packing as the CUDA backend (KernelTable offsets,
/// CU_LAUNCH_PARAM_BUFFER_POINTER/SIZE). --registers prints, in place of both, the registers a thread of every GEMV
/// entry and its local memory (spills and unpromoted locals) as the driver compiled it for this GPU.</summary>
public static unsafe class Program
{
    // NMSE limits (the ILGPU CPU-accelerator tests in tests/Engine.Kernels.Tests use the same ones).
    private const double GemvLimit = 1e-7, EmbeddingLimit = 1e-12, RmsNormLimit = 1e-10, RopeLimit = 1e-7,
        KvStoreLimit = 1e-12, AttentionLimit = 1e-9, ElementwiseLimit = 1e-12;
    // The tiled attention rounds q and the softmax weights to f16 (the tensor cores' inputs); the CPU tests use the same.
    private const double TiledAttentionLimit = 2e-6;

    private static CudaContext s_cu = null!;
    private static IntPtr s_stream;
    private static readonly Dictionary<string, (IntPtr Function, int Index)> s_kernels = new(StringComparer.Ordinal);
    private static int s_failures;
    private static GgmlType[]? s_benchFormats;
    private static string? s_benchShape;
    private static bool s_gemvOnly;        // --gemv-only: the bandwidth table without the prefill matmul one
    private static nuint s_sizeOverride;   // 0: the launcher's Size (end of the last parameter)
    private static uint s_gridZ;           // 0: the launcher's grid z; else the split-k GEMMs' splits (Engine.Runtime.Cuda.SplitK)

    public static int Main(string[] args)
    {
        bool bench = !args.Contains("--no-bench"), conformance = !args.Contains("--bench-only");
        s_gemvOnly = args.Contains("--gemv-only");
        // --formats Q8_0,Q4_K and --shape 4096x14336 narrow the bandwidth table (for profiling one kernel with ncu).
        int fi = Array.IndexOf(args, "--formats"), si = Array.IndexOf(args, "--shape");
        if (fi >= 0 && fi + 1 < args.Length) s_benchFormats = args[fi + 1].Split(',').Select(Enum.Parse<GgmlType>).ToArray();
        if (si >= 0 && si + 1 < args.Length) s_benchShape = args[si + 1];
        var cu = CudaContext.TryOpen(0, out string reason);
        if (cu is null) { Console.Error.WriteLine("gpu-selftest: no GPU: " + reason); return 2; }
        s_cu = cu;
        try
        {
            string? arch = PtxModules.ArchitectureFor(cu.Sm / 10, cu.Sm % 10);
            Console.WriteLine($"device: {cu.Name}, sm_{cu.Sm}, {cu.TotalMemory / (1 << 20)} MiB, {cu.MultiprocessorCount} SMs, driver {cu.DriverVersion}; PTX {arch ?? "none"}");
            if (arch is null) { Console.Error.WriteLine("gpu-selftest: no PTX architecture built for this GPU"); return 2; }
            s_stream = cu.CreateStream();
            LoadModules(arch);
            ProbeArgumentSize();
            if (args.Contains("--registers"))
            {
                // Registers a thread of every GEMV-family entry ("+N": N bytes of local memory, spills), as the driver
                // compiled the plan's PTX for this GPU.
                foreach (var e in KernelTable.All.Where(e => e.Family.StartsWith("gemv", StringComparison.Ordinal)))
                    Console.WriteLine($"registers {e.Name} {FunctionRegs(e.Name)}");
                return 0;
            }
            if (conformance) Conformance();
            if (bench) Bandwidth();
            Console.WriteLine(s_failures == 0 ? "gpu-selftest: all passed" : $"gpu-selftest: {s_failures} failure(s)");
            return s_failures == 0 ? 0 : 1;
        }
        catch (Exception e) when (e is CudaException or CudaModuleException)
        {
            Console.Error.WriteLine("gpu-selftest: " + e.Message);
            return 1;
        }
        finally { cu.Dispose(); }
    }

    private static void LoadModules(string arch)
    {
        var ptx = PtxModules.Get(arch);
        int loaded = 0;
        for (int i = 0; i < KernelTable.All.Count; i++)
        {
            var e = KernelTable.All[i];
            try
            {
                var module = s_cu.LoadModule(ptx[e.Name]);
                s_kernels[e.Name] = (s_cu.GetFunction(module, e.PtxEntry), i);
                loaded++;
            }
            catch (Exception ex) when (ex is CudaException or CudaModuleException)
            {
                Console.WriteLine($"load FAIL {e.Name}: {ex.Message}");
                s_failures++;
            }
        }
        Console.WriteLine($"modules: {loaded} of {KernelTable.All.Count} loaded for {arch}");
    }

    // ------------------------------------------------------------------ buffers and launches

    private sealed class Buffer(ulong pointer, long bytes) : IDisposable
    {
        public ulong Pointer { get; } = pointer;
        public long Bytes { get; } = bytes;
        public void Dispose() => s_cu.Free(Pointer);
    }

    private static Buffer Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        long bytes = (long)data.Length * sizeof(T);
        var b = new Buffer(s_cu.Alloc((ulong)Math.Max(bytes, 16)), bytes);
        fixed (T* p = data) Check(cuMemcpyHtoD(b.Pointer, p, (ulong)bytes), "cuMemcpyHtoD");
        return b;
    }

    /// <summary>A buffer filled with 0xFF bytes: NaN as f32 and f16, so an element the kernel fails to write fails the NMSE.</summary>
    private static Buffer Poisoned(long bytes)
    {
        var b = new Buffer(s_cu.Alloc((ulong)Math.Max(bytes, 16)), bytes);
        Check(cuMemsetD8(b.Pointer, 0xFF, (ulong)Math.Max(bytes, 16)), "cuMemsetD8");
        return b;
    }

    private static T[] Download<T>(Buffer b) where T : unmanaged
    {
        var r = new T[b.Bytes / sizeof(T)];
        fixed (T* p = r) Check(cuMemcpyDtoH(p, b.Pointer, (ulong)b.Bytes), "cuMemcpyDtoH");
        return r;
    }

    /// <summary>An argument: a buffer (as a view whose length is in the parameter's elements), an i32 or an f32.</summary>
    private readonly record struct Arg(Buffer? Buffer, int I, float F, bool IsFloat)
    {
        public static implicit operator Arg(Buffer b) => new(b, 0, 0, false);
        public static implicit operator Arg(int i) => new(null, i, 0, false);
        public static implicit operator Arg(float f) => new(null, 0, f, true);
    }

    /// <summary>Packs <paramref name="args"/> (an implicit kernel's extent first) by the entry's parameter offsets.</summary>
    private static void Pack(string entry, Span<byte> block, Arg[] args)
    {
        var e = KernelTable.All[s_kernels[entry].Index];
        if (args.Length != e.Params.Count) throw new ArgumentException($"{entry}: {args.Length} arguments for {e.Params.Count} parameters");
        block.Clear();
        for (int j = 0; j < args.Length; j++)
        {
            var p = e.Params[j];
            var at = block[p.Offset..];
            if (args[j].Buffer is { } b)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(at, b.Pointer);
                BinaryPrimitives.WriteInt64LittleEndian(at[8..], b.Bytes / ArgumentBlocks.ElementBytes(p.Type));
            }
            else if (p.Type == "f32") BinaryPrimitives.WriteSingleLittleEndian(at, args[j].F);
            else BinaryPrimitives.WriteInt32LittleEndian(at, args[j].I);
        }
    }

    private static CuResult TryLaunch(string entry, Span<byte> block, nuint size, bool pdl = false)
    {
        var (fn, index) = s_kernels[entry];
        var s = Launchers.ShapeOf((KernelId)index, block);
        if (s_gridZ != 0) s = s with { GridZ = s_gridZ };
        fixed (byte* pb = block)
        {
            void** extra = stackalloc void*[5];
            extra[0] = (void*)CU_LAUNCH_PARAM_BUFFER_POINTER; extra[1] = pb;
            extra[2] = (void*)CU_LAUNCH_PARAM_BUFFER_SIZE; extra[3] = &size;
            extra[4] = (void*)CU_LAUNCH_PARAM_END;
            // pdl: as ntrun launches on sm_90 (programmatic dependent launch, kernels/Pdl.cs).
            return pdl
                ? LaunchProgrammatic(fn, s.GridX, s.GridY, s.GridZ, s.BlockX, 0, s_stream, extra)
                : cuLaunchKernel(fn, s.GridX, s.GridY, s.GridZ, s.BlockX, 1, 1, 0, s_stream, null, extra);
        }
    }

    private static void Launch(string entry, params Arg[] args)
    {
        Span<byte> block = stackalloc byte[ArgumentBlocks.Stride];
        Pack(entry, block, args);
        var size = s_sizeOverride != 0 ? s_sizeOverride : (nuint)KernelTable.All[s_kernels[entry].Index].ArgumentBytes;
        var r = TryLaunch(entry, block, size);
        if (r != CuResult.Success) throw new CudaException($"cuLaunchKernel({entry})", r);
        Check(cuStreamSynchronize(s_stream), $"cuStreamSynchronize after {entry}");
    }

    /// <summary>Which CU_LAUNCH_PARAM_BUFFER_SIZE the driver accepts: the end of the last parameter (the launcher's
    /// Size, what the CUDA backend passes) or that rounded up to 8 (the struct's size).</summary>
    private static void ProbeArgumentSize()
    {
        using var x = Upload<float>([1f, 2f, 3f]);
        using var y = Upload<float>([1f, 1f, 1f]);
        Span<byte> block = stackalloc byte[ArgumentBlocks.Stride];
        Pack("Add", block, [3, x, y, 3]);
        int exact = KernelTable.All[s_kernels["Add"].Index].ArgumentBytes;
        var r = TryLaunch("Add", block, (nuint)exact);
        if (r == CuResult.Success) { Check(cuStreamSynchronize(s_stream), "cuStreamSynchronize"); Console.WriteLine($"argument block: the driver accepts the launcher's Size ({exact} bytes for Add)"); return; }
        int rounded = (exact + 7) / 8 * 8;
        var r2 = TryLaunch("Add", block, (nuint)rounded);
        Console.WriteLine($"argument block: Size {exact} refused ({Describe(r)}); rounded {rounded}: {(r2 == CuResult.Success ? "accepted: THE CUDA BACKEND MUST PASS THE ROUNDED SIZE" : Describe(r2))}");
        s_failures++;
        if (r2 == CuResult.Success) { s_sizeOverride = (nuint)rounded; Check(cuStreamSynchronize(s_stream), "cuStreamSynchronize"); }
    }

    // ------------------------------------------------------------------ conformance

    private static void Row(string kernel, string shape, double nmse, double limit)
    {
        bool ok = nmse <= limit;
        if (!ok) s_failures++;
        Console.WriteLine($"| {kernel,-18} | {shape,-26} | {nmse,10:E2} | {limit,7:E0} | {(ok ? "ok" : "FAIL")} |");
    }

    /// <summary>A row for an exact comparison: <paramref name="mismatches"/> values that differ, any is a failure.</summary>
    private static void CountRow(string kernel, string shape, int mismatches)
    {
        if (mismatches != 0) s_failures++;
        Console.WriteLine($"| {kernel,-18} | {shape,-26} | {mismatches,10} |       0 | {(mismatches == 0 ? "pass" : "FAIL")}   |");
    }

    private static double Nmse(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        double err = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!float.IsFinite(actual[i])) return double.PositiveInfinity;
            double d = actual[i] - expected[i];
            err += d * d;
            norm += expected[i] * expected[i];
        }
        return norm == 0 ? err : err / norm;
    }

    private static readonly GgmlType[] Formats =
        [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];

    private static void Conformance()
    {
        Console.WriteLine();
        Console.WriteLine("| kernel             | shape                      |       NMSE |   limit | result |");
        Console.WriteLine("| ---                | ---                        |       ---: |    ---: | ---    |");
        foreach (var f in Formats)
        {
            int be = GgmlTypeInfo.BlockElements(f);
            int[] colsCases = be == 1 ? [4096, 200] : be == 32 ? [4096, 32 * 37] : [4096, 256 * 3];
            foreach (int cols in colsCases)
                foreach (int tokens in new[] { 1, 5 })
                {
                    Gemv(f, 1029, cols, tokens, add: false);
                    Gemv(f, 1029, cols, tokens, add: true);
                    GemvSwiGlu(f, 515, cols, tokens);
                }
            // An 8B's down projection: gemv_add of one token over 3.5 rounds of lane units (Gemv.HalvedLanes; Q8_0:
            // Gemv.FirstUnitEarly), which the shapes above (one round or less) do not reach.
            if (be > 1) Gemv(f, 1029, 14336, 1, add: true);
            Qkv(f, f, "GemvQkv_", "Gemv_", 1029, 258, colsCases[0], 1);
            if (be > 1) Qkv(f, f, "GemmQkv_", "Gemm_", 1029, 258, colsCases[0], 70);
            Embedding(f, 300, colsCases[1], 5);
            if (be > 1)
                foreach (int cols in colsCases)
                    foreach (var (rows, tokens) in new[] { (1029, 70), (200, 512) })
                        foreach (var mode in new[] { "Gemm_", "GemmAdd_", "GemmSwiGlu_" })
                            Gemm(f, mode, rows, cols, tokens);
            // Split-k: 1029 rows × 70 tokens are 18 tiles, 8 splits 144 groups (4096 columns: 4 stages a split; 768: the
            // last two splits empty).
            if (be > 1)
                foreach (int cols in colsCases)
                    Gemm(f, "GemmAdd_", 1029, cols, 70, splits: 8);
        }
        // The format pairs (q and k in one format, v in another: Q4_K_M's and Q5_K_M's Q6_K attn_v layers).
        foreach (var (qk, v) in new[] { (GgmlType.Q4_K, GgmlType.Q6_K), (GgmlType.Q5_K, GgmlType.Q6_K), (GgmlType.Q4_K, GgmlType.Q5_K) })
            if (Formats.Contains(qk) && Formats.Contains(v))
            {
                Qkv(qk, v, "GemvQkv_", "Gemv_", 1029, 258, 4096, 1);
                Qkv(qk, v, "GemmQkv_", "Gemm_", 1029, 258, 4096, 70);
            }
        Quantize(4096, 3);
        Quantize(14336, 1);
        Quantize(300, 2);
        RmsNorm(4096, 3);
        Rope(8, 2, 128, [5, 100, 4000], withFactors: false);
        Rope(8, 2, 128, [5, 100, 4000], withFactors: true);
        KvStore(256, [3, 4, 9]);
        RopeKvStore(8, 2, 128, [5, 100, 4000]);
        Attention(8, 2, 128, [37, 38]);
        Attention(32, 8, 128, [0, 700]);
        Attention(32, 8, 128, [8000]);      // one decode token deep in the context: 32 ranges merged by the last group
        Attention(64, 8, 128, [3000]);      // eight query heads a kv head (70B): two passes of four, 12 ranges
        Attention(32, 32, 128, [700]);      // no GQA (Llama 2 7B): three ranges
        Attention(32, 8, 128, [100]);       // a context of one pass of the short kernel
        Attention(32, 8, 128, [255, 256]);  // two and three passes of the short kernel
        Attention(32, 8, 128, [.. Enumerable.Range(0, 130)]);     // a prompt: three token tiles of the tiled kernel
        Attention(32, 8, 64, [.. Enumerable.Range(400, 70)]);     // a prompt's second step, head_dim 64 (Llama 3.2 1B)
        Elementwise(10007);
    }

    private static float Gaussian(Random rng) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));

    private static float[] Gaussians(Random rng, long n)
    {
        var v = new float[n];
        for (long i = 0; i < n; i++) v[i] = Gaussian(rng);
        return v;
    }

    /// <summary>Random weights: random quant bytes (every bit pattern is a valid level) with f16 scales in a
    /// realistic range, N(0,1) values for the float formats (as tests/Engine.Kernels.Tests' ReferenceFormats).</summary>
    private static byte[] RandomWeights(GgmlType f, int rows, int cols, Random rng)
    {
        int be = GgmlTypeInfo.BlockElements(f), bb = GgmlTypeInfo.BlockBytes(f);
        var data = new byte[(long)rows * cols / be * bb];
        rng.NextBytes(data);
        for (long b = 0; b < data.Length / bb; b++)
        {
            var block = data.AsSpan((int)(b * bb), bb);
            switch (f)
            {
                case GgmlType.F32: BinaryPrimitives.WriteSingleLittleEndian(block, Gaussian(rng)); break;
                case GgmlType.F16: BinaryPrimitives.WriteHalfLittleEndian(block, (Half)Gaussian(rng)); break;
                case GgmlType.BF16: BinaryPrimitives.WriteUInt16LittleEndian(block, (ushort)(BitConverter.SingleToUInt32Bits(Gaussian(rng)) >> 16)); break;
                case GgmlType.Q8_0 or GgmlType.Q4_0: BinaryPrimitives.WriteHalfLittleEndian(block, (Half)(0.01 + rng.NextDouble() * 0.05)); break;
                case GgmlType.Q4_K or GgmlType.Q5_K:
                    BinaryPrimitives.WriteHalfLittleEndian(block, (Half)(0.001 + rng.NextDouble() * 0.01));
                    BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)(0.001 + rng.NextDouble() * 0.01));
                    break;
                case GgmlType.Q6_K: BinaryPrimitives.WriteHalfLittleEndian(block[208..], (Half)(0.001 + rng.NextDouble() * 0.01)); break;
            }
        }
        return data;
    }

    private static double[] DequantizedRow(GgmlType f, byte[] w, int row, int cols)
    {
        long rowBytes = GgmlTypeInfo.RowBytes(f, cols);
        var y = new double[cols];
        WeightFormat.DequantizeRow(f, w.AsSpan((int)(row * rowBytes), (int)rowBytes), y);
        return y;
    }

    private static double Dot(double[] w, double[] x, int offset)
    {
        double s = 0;
        for (int c = 0; c < w.Length; c++) s += w[c] * x[offset + c];
        return s;
    }

    /// <summary>The activations an int8-format GEMV multiplies: d·q of the quantize kernel's 8-bit blocks (ggml
    /// quantize_row_q8_0 rounding, ties to even); x itself for the float formats.</summary>
    private static double[] Activations(GgmlType f, float[] x, int cols)
    {
        if (GgmlTypeInfo.BlockElements(f) == 1) return x.Select(v => (double)v).ToArray();
        var y = new double[x.Length];
        for (int t = 0; t < x.Length / cols; t++)
            for (int b = 0; b * 32 < cols; b++)
            {
                int lo = t * cols + 32 * b, hi = t * cols + Math.Min(cols, 32 * b + 32);
                float amax = 0;
                for (int i = lo; i < hi; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
                float id = amax != 0 ? 127f / amax : 0f, d = (float)(Half)(amax / 127f);
                for (int i = lo; i < hi; i++) y[i] = d * (double)MathF.Round(x[i] * id, MidpointRounding.ToEven);
            }
        return y;
    }

    // The quantize kernel's row layout (kernels/Quantize.cs; this harness is NativeAOT and cannot reference ILGPU).
    private static long QuantizedRowBytes(int cols) => (cols + 63) / 64 * 80L;
    private static long QuantizedPairsOffset(int cols) => (cols + 63) / 64 * 64L;

    /// <summary>x quantized on the device by the quantize kernel (the planned program runs it before each matmul).
    /// Its values are checked against the reference: the (d, Σq) pairs must dequantize to <see cref="Activations"/>.</summary>
    private static Buffer Quantized(Buffer xb, int cols, int tokens)
    {
        var qb = Poisoned(QuantizedRowBytes(cols) * tokens);
        Launch("Quantize", xb, qb, cols, tokens);
        return qb;
    }

    private static void Quantize(int cols, int tokens)
    {
        var rng = new Random(cols * 5 + tokens);
        float[] x = Gaussians(rng, (long)cols * tokens);
        using var xb = Upload<float>(x);
        using var qb = Quantized(xb, cols, tokens);
        CheckQuantized("Quantize", $"{cols} x {tokens} tok", Download<byte>(qb), x, cols);
    }

    /// <summary>One row of the table for quantized activations <paramref name="q"/> of <paramref name="x"/>: how
    /// many values d·q differ from the reference quantization (<see cref="Activations"/>); any is a failure.</summary>
    private static void CheckQuantized(string kernel, string shape, byte[] q, float[] x, int cols)
    {
        double[] expected = Activations(GgmlType.Q8_0, x, cols);
        long rowBytes = QuantizedRowBytes(cols), pairs = QuantizedPairsOffset(cols);
        int mismatches = 0;
        for (int i = 0; i < x.Length; i++)
        {
            int t = i / cols, c = i % cols;
            float d = BitConverter.ToSingle(q, (int)(t * rowBytes + pairs + 8L * (c / 32)));
            if (d * (double)(sbyte)q[t * rowBytes + c] != expected[i]) mismatches++;
        }
        CountRow(kernel, shape, mismatches);
    }

    /// <summary>gemv (y = W·x into a NaN-poisoned y) or, with <paramref name="add"/>, gemv_add (y += W·x in place).</summary>
    private static void Gemv(GgmlType f, int rows, int cols, int tokens, bool add)
    {
        var rng = add ? new Random(rows * 7901 + cols * 29 + tokens + (int)f) : new Random(rows * 7919 + cols * 31 + tokens + (int)f);
        byte[] w = RandomWeights(f, rows, cols, rng);
        float[] x = Gaussians(rng, (long)cols * tokens);
        float[] y0 = add ? Gaussians(rng, (long)rows * tokens) : new float[rows * tokens];
        string entry = (add ? "GemvAdd_" : "Gemv_") + f;
        using var wb = Upload<byte>(w);
        using var xb = Upload<float>(x);
        using var qb = Quantized(xb, cols, tokens);
        using var yb = add ? Upload<float>(y0) : Poisoned((long)rows * tokens * 4);
        using var ws = SplitWorkspace.Create();
        if (add) Launch(entry, wb, xb, qb, yb, ws.Part, ws.Sync, rows, cols, tokens);
        else Launch(entry, wb, xb, qb, yb, rows, cols, tokens);
        double[] xs = Activations(f, x, cols);
        var expected = new double[rows * tokens];
        for (int r = 0; r < rows; r++)
        {
            var wr = DequantizedRow(f, w, r, cols);
            for (int t = 0; t < tokens; t++) expected[t * rows + r] = y0[t * rows + r] + Dot(wr, xs, t * cols);
        }
        Row(entry, $"{rows}x{cols}, {tokens} tok", Nmse(Download<float>(yb), expected), GemvLimit);
    }

    private static double Silu(double g) => g / (1 + Math.Exp(-g));

    private static void GemvSwiGlu(GgmlType f, int rows, int cols, int tokens)
    {
        var rng = new Random(rows * 7907 + cols * 37 + tokens + (int)f);
        byte[] g = RandomWeights(f, rows, cols, rng), u = RandomWeights(f, rows, cols, rng);
        float[] x = Gaussians(rng, (long)cols * tokens);
        using var gb = Upload<byte>(g);
        using var ub = Upload<byte>(u);
        using var xb = Upload<float>(x);
        using var qb = Quantized(xb, cols, tokens);
        using var yb = Poisoned((long)rows * tokens * 4);
        Launch("GemvSwiGlu_" + f, gb, ub, xb, qb, yb, rows, cols, tokens);
        double[] xs = Activations(f, x, cols);
        var expected = new double[rows * tokens];
        for (int r = 0; r < rows; r++)
        {
            double[] gr = DequantizedRow(f, g, r, cols), ur = DequantizedRow(f, u, r, cols);
            for (int t = 0; t < tokens; t++) expected[t * rows + r] = Silu(Dot(gr, xs, t * cols)) * Dot(ur, xs, t * cols);
        }
        Row("GemvSwiGlu_" + f, $"{rows}x{cols}, {tokens} tok", Nmse(Download<float>(yb), expected), GemvLimit);
    }

    /// <summary>The fused q/k/v projections (gemv_qkv, gemm_qkv) against three launches of the plain kernel
    /// (<paramref name="plain"/>) on the same matrices: the same floats bit for bit (the plain kernels are checked
    /// against float64 above). Row counts are not multiples of the group's rows. q and k are in format
    /// <paramref name="f"/>, v in <paramref name="fv"/> (a format pair's entry, e.g. GemvQkv_Q4_K_Q6_K, where they differ).</summary>
    private static void Qkv(GgmlType f, GgmlType fv, string fused, string plain, int rows, int kvDim, int cols, int tokens)
    {
        var rng = new Random(rows * 31 + kvDim + cols * 7 + tokens + (int)f + 3 * (int)fv);
        byte[] wq = RandomWeights(f, rows, cols, rng), wk = RandomWeights(f, kvDim, cols, rng), wv = RandomWeights(fv, kvDim, cols, rng);
        float[] x = Gaussians(rng, (long)cols * tokens);
        using var qw = Upload<byte>(wq);
        using var kw = Upload<byte>(wk);
        using var vw = Upload<byte>(wv);
        using var xb = Upload<float>(x);
        using var xq = Quantized(xb, cols, tokens);
        using var q = Poisoned((long)rows * tokens * 4);
        using var k = Poisoned((long)kvDim * tokens * 4);
        using var v = Poisoned((long)kvDim * tokens * 4);
        string entry = fused + f + (fv == f ? "" : "_" + fv);
        using var ws = SplitWorkspace.Create();
        Launch(entry, qw, kw, vw, xb, xq, q, k, v, ws.Part, ws.Sync, rows, kvDim, cols, tokens);
        int differ = 0;
        var plainOut = new List<float[]>();
        foreach (var (w, y, n, wf) in new[] { (qw, q, rows, f), (kw, k, kvDim, f), (vw, v, kvDim, fv) })
        {
            using var expected = Poisoned((long)n * tokens * 4);
            Launch(plain + wf, w, xb, xq, expected, n, cols, tokens);
            float[] want = Download<float>(expected);
            differ += Differ(Download<float>(y), want);
            plainOut.Add(want);
        }
        CountRow(entry, $"{rows}+2x{kvDim} x {cols}, {tokens} tok", differ);
        if (!fused.StartsWith("Gemm", StringComparison.Ordinal)) return;
        // Split-k (the runtime's grid z for few tiles): the sums in another order, so against the plain GEMMs by NMSE;
        // twice, bit for bit (the last split of a tile sums the partials in split order whoever it is), tickets back at 0.
        s_gridZ = 3;
        try
        {
            var runs = new List<float[]>();
            for (int run = 0; run < 2; run++)
            {
                Launch(entry, qw, kw, vw, xb, xq, q, k, v, ws.Part, ws.Sync, rows, kvDim, cols, tokens);
                runs.Add([.. Download<float>(q), .. Download<float>(k), .. Download<float>(v)]);
            }
            double[] want = [.. plainOut.SelectMany(a => a.Select(x => (double)x))];
            Row(entry, $"split 3, {tokens} tok", Nmse(runs[0], want), GemvLimit);
            CountRow(entry, $"split 3 twice, tickets", Differ(runs[0], runs[1]) + ws.Tickets());
        }
        finally { s_gridZ = 0; }
    }

    private static int Differ(float[] a, float[] b) => a.Zip(b).Count(p => BitConverter.SingleToInt32Bits(p.First) != BitConverter.SingleToInt32Bits(p.Second));

    /// <summary>The split-k GEMMs' workspace (llama.graph mm_part, mm_sync): 256 partial tiles and their tickets,
    /// zero.</summary>
    private sealed class SplitWorkspace : IDisposable
    {
        public required Buffer Part { get; init; }
        public required Buffer Sync { get; init; }

        public static SplitWorkspace Create() => new() { Part = Poisoned(256L * 128 * 64 * 4), Sync = Upload<int>(new int[256]) };

        /// <summary>Tickets not back at zero.</summary>
        public int Tickets() => Download<int>(Sync).Count(t => t != 0);

        public void Dispose() { Part.Dispose(); Sync.Dispose(); }
    }

    /// <summary>The tiled tensor-core GEMM (gemm, gemm_add, gemm_swiglu: <paramref name="mode"/> is the entry
    /// prefix) against the float64 reference: on the GPU this checks the mma fragment layout the CPU-accelerator tests
    /// cannot (they compute the fragments' elements from the shared tiles).</summary>
    private static void Gemm(GgmlType f, string mode, int rows, int cols, int tokens, uint splits = 0)
    {
        var rng = new Random(rows * 7927 + cols * 41 + tokens + (int)f + mode.Length);
        bool swiglu = mode == "GemmSwiGlu_", add = mode == "GemmAdd_";
        byte[] w = RandomWeights(f, rows, cols, rng), u = swiglu ? RandomWeights(f, rows, cols, rng) : [];
        float[] x = Gaussians(rng, (long)cols * tokens);
        float[] y0 = add ? Gaussians(rng, (long)rows * tokens) : new float[rows * tokens];
        using var wb = Upload<byte>(w);
        using var ub = Upload<byte>(swiglu ? u : [0]);
        using var xb = Upload<float>(x);
        using var qb = Quantized(xb, cols, tokens);
        using var yb = add ? Upload<float>(y0) : Poisoned((long)rows * tokens * 4);
        using var ws = SplitWorkspace.Create();
        s_gridZ = splits;
        try
        {
            if (swiglu) Launch(mode + f, wb, ub, xb, qb, yb, rows, cols, tokens);
            else if (add) Launch(mode + f, wb, xb, qb, yb, ws.Part, ws.Sync, rows, cols, tokens);
            else Launch(mode + f, wb, xb, qb, yb, rows, cols, tokens);
            if (splits > 1)
            {
                // Twice, bit for bit, whichever split of a tile comes last; the tickets back at zero.
                float[] first = Download<float>(yb);
                using var again = Upload<float>(y0);
                Launch(mode + f, wb, xb, qb, again, ws.Part, ws.Sync, rows, cols, tokens);
                CountRow(mode + f, $"split {splits} twice, tickets", Differ(first, Download<float>(again)) + ws.Tickets());
            }
        }
        finally { s_gridZ = 0; }
        double[] xs = Activations(f, x, cols);
        var expected = new double[rows * tokens];
        Parallel.For(0, rows, r =>
        {
            var wr = DequantizedRow(f, w, r, cols);
            var ur = swiglu ? DequantizedRow(f, u, r, cols) : null;
            for (int t = 0; t < tokens; t++)
                expected[t * rows + r] = swiglu ? Silu(Dot(wr, xs, t * cols)) * Dot(ur!, xs, t * cols) : y0[t * rows + r] + Dot(wr, xs, t * cols);
        });
        Row(mode + f, $"{rows}x{cols}, {tokens} tok{(splits > 1 ? $", split {splits}" : "")}", Nmse(Download<float>(yb), expected), GemvLimit);
    }

    private static void Embedding(GgmlType f, int vocab, int cols, int tokens)
    {
        var rng = new Random(vocab + cols + (int)f);
        byte[] table = RandomWeights(f, vocab, cols, rng);
        int[] ids = Enumerable.Range(0, tokens).Select(_ => rng.Next(vocab)).ToArray();
        using var tb = Upload<byte>(table);
        using var ib = Upload<int>(ids);
        using var yb = Poisoned((long)cols * tokens * 4);
        Launch("Embedding_" + f, cols * tokens, tb, ib, yb, cols, tokens);
        var expected = ids.SelectMany(id => DequantizedRow(f, table, id, cols)).ToArray();
        Row("Embedding_" + f, $"{vocab}x{cols}, {tokens} tok", Nmse(Download<float>(yb), expected), EmbeddingLimit);
    }

    private static void RmsNorm(int cols, int tokens)
    {
        var rng = new Random(11);
        float[] x = Gaussians(rng, (long)cols * tokens), w = Gaussians(rng, cols);
        const float eps = 1e-5f;
        using var xb = Upload<float>(x);
        using var wb = Upload<float>(w);
        using var yb = Poisoned((long)cols * tokens * 4);
        using var qb = Poisoned(QuantizedRowBytes(cols) * tokens);
        Launch("RmsNorm", xb, wb, yb, qb, cols, tokens, eps);
        var expected = new double[cols * tokens];
        for (int t = 0; t < tokens; t++)
        {
            double ss = 0;
            for (int c = 0; c < cols; c++) ss += (double)x[t * cols + c] * x[t * cols + c];
            double scale = 1 / Math.Sqrt(ss / cols + eps);
            for (int c = 0; c < cols; c++) expected[t * cols + c] = x[t * cols + c] * scale * w[c];
        }
        float[] y = Download<float>(yb);
        Row("RmsNorm", $"{cols}, {tokens} tok", Nmse(y, expected), RmsNormLimit);
        // Its fused quantized output against the reference quantization of y (as Quantize() checks the kernel).
        CheckQuantized("RmsNorm quantized", $"{cols}, {tokens} tok", Download<byte>(qb), y, cols);
    }

    private static void Rope(int nHead, int nHeadKv, int headDim, int[] positions, bool withFactors)
    {
        var rng = new Random(13);
        int tokens = positions.Length;
        float[] q = Gaussians(rng, (long)tokens * nHead * headDim), k = Gaussians(rng, (long)tokens * nHeadKv * headDim);
        float[] factors = withFactors ? Enumerable.Range(0, headDim / 2).Select(i => 1f + i % 7).ToArray() : [];
        const float freqBase = 500000f, freqScale = 1f;
        using var qb = Upload<float>(q);
        using var kb = Upload<float>(k);
        using var pb = Upload<int>(positions);
        using var fb = Upload<float>(factors);
        int extent = tokens * (nHead + nHeadKv) * (headDim / 2);
        Launch("Rope", extent, qb, kb, pb, fb, nHead, nHeadKv, headDim, tokens, freqBase, freqScale);
        double[] Rotate(float[] v, int heads)
        {
            var r = new double[v.Length];
            for (int t = 0; t < tokens; t++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < headDim / 2; i++)
                    {
                        double theta = positions[t] * freqScale * Math.Pow(freqBase, -2.0 * i / headDim) / (withFactors ? factors[i] : 1);
                        long at = ((long)t * heads + h) * headDim + 2 * i;
                        r[at] = v[at] * Math.Cos(theta) - v[at + 1] * Math.Sin(theta);
                        r[at + 1] = v[at] * Math.Sin(theta) + v[at + 1] * Math.Cos(theta);
                    }
            return r;
        }
        string shape = $"{nHead}/{nHeadKv}x{headDim}{(withFactors ? " +freqs" : "")}";
        Row("Rope q", shape, Nmse(Download<float>(qb), Rotate(q, nHead)), RopeLimit);
        Row("Rope k", shape, Nmse(Download<float>(kb), Rotate(k, nHeadKv)), RopeLimit);
    }

    private static void KvStore(int kvDim, int[] positions)
    {
        var rng = new Random(17);
        int tokens = positions.Length, ctx = positions.Max() + 1;
        float[] k = Gaussians(rng, (long)kvDim * tokens), v = Gaussians(rng, (long)kvDim * tokens);
        using var kb = Upload<float>(k);
        using var vb = Upload<float>(v);
        using var pb = Upload<int>(positions);
        using var kc = Poisoned((long)ctx * kvDim * 2);
        using var vc = Poisoned((long)ctx * kvDim * 2);
        Launch("KvStore", kvDim * tokens, kb, vb, kc, vc, pb, kvDim, tokens);
        Half[] kCache = Download<Half>(kc), vCache = Download<Half>(vc);
        var (ka, ke, va, ve) = (new float[k.Length], new double[k.Length], new float[v.Length], new double[v.Length]);
        for (int t = 0; t < tokens; t++)
            for (int c = 0; c < kvDim; c++)
            {
                int i = t * kvDim + c, slot = positions[t] * kvDim + c;
                ka[i] = (float)kCache[slot]; ke[i] = (double)(Half)k[i];
                va[i] = (float)vCache[slot]; ve[i] = (double)(Half)v[i];
            }
        Row("KvStore k", $"{kvDim}, {tokens} tok", Nmse(ka, ke), KvStoreLimit);
        Row("KvStore v", $"{kvDim}, {tokens} tok", Nmse(va, ve), KvStoreLimit);
    }

    /// <summary>The fused rope_kv_store against rope then kv_store on the GPU: q and the two caches as NMSE of the fused
    /// kernel's values against the pair's (the same arithmetic: 0 unless ptxas contracts them differently).</summary>
    private static void RopeKvStore(int nHead, int nHeadKv, int headDim, int[] positions)
    {
        var rng = new Random(23);
        int tokens = positions.Length, kvDim = nHeadKv * headDim, ctx = positions.Max() + 1;
        float[] q = Gaussians(rng, (long)tokens * nHead * headDim), k = Gaussians(rng, (long)tokens * kvDim), v = Gaussians(rng, (long)tokens * kvDim);
        float[] factors = Enumerable.Range(0, headDim / 2).Select(i => 1f + i % 7).ToArray();
        const float freqBase = 500000f, freqScale = 1f;
        int extent = tokens * (nHead + nHeadKv) * (headDim / 2);
        using var pb = Upload<int>(positions);
        using var fb = Upload<float>(factors);
        using var vb = Upload<float>(v);
        using var q1 = Upload<float>(q);
        using var k1 = Upload<float>(k);
        using var kc1 = Poisoned((long)ctx * kvDim * 2);
        using var vc1 = Poisoned((long)ctx * kvDim * 2);
        Launch("Rope", extent, q1, k1, pb, fb, nHead, nHeadKv, headDim, tokens, freqBase, freqScale);
        Launch("KvStore", kvDim * tokens, k1, vb, kc1, vc1, pb, kvDim, tokens);
        using var q2 = Upload<float>(q);
        using var k2 = Upload<float>(k);
        using var kc2 = Poisoned((long)ctx * kvDim * 2);
        using var vc2 = Poisoned((long)ctx * kvDim * 2);
        Launch("RopeKvStore", extent, q2, k2, vb, kc2, vc2, pb, fb, nHead, nHeadKv, headDim, tokens, freqBase, freqScale);
        double[] Rows(Half[] cache) => positions.SelectMany(p => cache.Skip(p * kvDim).Take(kvDim)).Select(x => (double)x).ToArray();
        float[] Floats(Half[] cache) => Rows(cache).Select(x => (float)x).ToArray();
        string shape = $"{nHead}/{nHeadKv}x{headDim}, {tokens} tok";
        Row("RopeKvStore q", shape, Nmse(Download<float>(q2), Download<float>(q1).Select(x => (double)x).ToArray()), KvStoreLimit);
        Row("RopeKvStore k", shape, Nmse(Floats(Download<Half>(kc2)), Rows(Download<Half>(kc1))), KvStoreLimit);
        Row("RopeKvStore v", shape, Nmse(Floats(Download<Half>(vc2)), Rows(Download<Half>(vc1))), KvStoreLimit);
    }

    private static void Attention(int nHead, int nHeadKv, int headDim, int[] positions)
    {
        var rng = new Random(19 + nHead);
        int tokens = positions.Length, ctx = positions.Max() + 1, kvDim = nHeadKv * headDim;
        float[] q = Gaussians(rng, (long)tokens * nHead * headDim);
        Half[] kc = Gaussians(rng, (long)ctx * kvDim).Select(x => (Half)x).ToArray();
        Half[] vc = Gaussians(rng, (long)ctx * kvDim).Select(x => (Half)x).ToArray();
        float scale = 1f / MathF.Sqrt(headDim);
        using var qb = Upload<float>(q);
        using var kb = Upload<Half>(kc);
        using var vb = Upload<Half>(vc);
        using var pb = Upload<int>(positions);
        using var yb = Poisoned((long)tokens * nHead * headDim * 4);
        using var part = Poisoned(64L * nHead * (headDim + 2) * 4);
        using var sync = Upload<int>(new int[nHeadKv * tokens]);
        Launch("Attention", qb, kb, vb, pb, yb, part, sync, nHead, nHeadKv, headDim, tokens, scale);
        // The last group of each kv head and token leaves its range counter at zero for the next launch.
        CountRow("Attention counters", $"{nHead}/{nHeadKv}x{headDim}, {tokens} tok", Download<int>(sync).Count(c => c != 0));
        // The quantizing variant of a family (head_dim a multiple of 32): the same y, and its 8-bit form byte for byte
        // the quantize kernel's of that y.
        void QuantizedMatches(string fused, Buffer plainY)
        {
            if (headDim % 32 != 0) return;
            int cols = nHead * headDim;
            using var y2 = Poisoned((long)tokens * cols * 4);
            using var yq = Poisoned(QuantizedRowBytes(cols) * tokens);
            Launch(fused, qb, kb, vb, pb, y2, yq, part, sync, nHead, nHeadKv, headDim, tokens, scale);
            Row(fused + " y", $"{nHead}/{nHeadKv}x{headDim}, {tokens} tok", Nmse(Download<float>(y2), Download<float>(plainY).Select(x => (double)x).ToArray()), KvStoreLimit);
            QuantizedBytesMatch(fused, yq, plainY);
        }
        // yq against the quantize kernel's bytes of y, byte for byte.
        void QuantizedBytesMatch(string kernel, Buffer yq, Buffer y)
        {
            using var ref8 = Quantized(y, nHead * headDim, tokens);
            byte[] a = Download<byte>(yq), b = Download<byte>(ref8);
            CountRow(kernel + " q8", $"{nHead}/{nHeadKv}x{headDim}, {tokens} tok", a.Zip(b).Count(p => p.First != p.Second));
        }
        QuantizedMatches("AttentionQuant", yb);
        var expected = new double[tokens * nHead * headDim];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < nHead; h++)
            {
                int kvHead = h / (nHead / nHeadKv), n = positions[t] + 1;
                long qRow = ((long)t * nHead + h) * headDim;
                var s = new double[n];
                for (int p = 0; p < n; p++)
                {
                    double dot = 0;
                    for (int d = 0; d < headDim; d++) dot += q[qRow + d] * (double)kc[(long)p * kvDim + kvHead * headDim + d];
                    s[p] = dot * scale;
                }
                double max = s.Max(), sum = s.Sum(x => Math.Exp(x - max));
                for (int d = 0; d < headDim; d++)
                {
                    double acc = 0;
                    for (int p = 0; p < n; p++) acc += Math.Exp(s[p] - max) / sum * (double)vc[(long)p * kvDim + kvHead * headDim + d];
                    expected[qRow + d] = acc;
                }
            }
        Row("Attention", $"{nHead}/{nHeadKv}x{headDim}, pos {string.Join(",", positions)}", Nmse(Download<float>(yb), expected), AttentionLimit);
        // The short kernel (the op's short=: one group a query head, any context length in passes of 128 positions).
        if (headDim % 16 == 0 && headDim <= 128)
        {
            using var ys = Poisoned((long)tokens * nHead * headDim * 4);
            Launch("AttentionShort", qb, kb, vb, pb, ys, part, sync, nHead, nHeadKv, headDim, tokens, scale);
            Row("AttentionShort", $"{nHead}/{nHeadKv}x{headDim}, pos {string.Join(",", positions)}", Nmse(Download<float>(ys), expected), AttentionLimit);
            QuantizedMatches("AttentionQuantShort", ys);
        }
        // The tiled kernel of prompt steps (the op's batch=: tensor cores, q and the weights rounded to f16), its own y
        // against the reference and its 8-bit form byte for byte the quantize kernel's of that y.
        if (headDim % 32 == 0 && headDim <= 128)
        {
            int cols = nHead * headDim;
            using var yt = Poisoned((long)tokens * cols * 4);
            using var yq = Poisoned(QuantizedRowBytes(cols) * tokens);
            Launch("AttentionQuantTiled", qb, kb, vb, pb, yt, yq, part, sync, nHead, nHeadKv, headDim, tokens, scale);
            Row("AttentionQuantTiled", $"{nHead}/{nHeadKv}x{headDim}, {tokens} tok", Nmse(Download<float>(yt), expected), TiledAttentionLimit);
            QuantizedBytesMatch("AttentionQuantTiled", yq, yt);
        }
    }

    private static void Elementwise(int n)
    {
        var rng = new Random(23);
        float[] a = Gaussians(rng, n), b = Gaussians(rng, n);
        using var ab = Upload<float>(a);
        using var bb = Upload<float>(b);
        using var yb = Poisoned((long)n * 4);
        Launch("SwiGlu", n, ab, bb, yb, n);
        Row("SwiGlu", $"{n}", Nmse(Download<float>(yb), a.Select((g, i) => Silu(g) * b[i]).ToArray()), ElementwiseLimit);
        Launch("Add", n, ab, bb, n);
        Row("Add", $"{n}", Nmse(Download<float>(ab), a.Select((x, i) => (double)x + b[i]).ToArray()), ElementwiseLimit);
    }

    // ------------------------------------------------------------------ bandwidth

    private static void Bandwidth()
    {
        var probe = BandwidthProbe.Measure(s_cu);
        Console.WriteLine();
        Console.WriteLine($"device copy {probe.DeviceCopyGBs:F0} GB/s (read + write), pinned H2D {probe.PinnedH2DGBs:F1} GB/s, D2H {probe.PinnedD2HGBs:F1} GB/s");
        // µs: graph replay; pdl µs: graph replay with programmatic dependent launch (sm_90), as ntrun's decode runs.
        bool pdl = s_cu.Sm >= 90;
        // regs: registers a thread of gemv / gemv_swiglu (cuFuncGetAttribute): they bound the groups an SM holds, and
        // so whether a 4096-row matrix's 1024 groups fit in one wave.
        Console.WriteLine("| format | rows x cols   | weight MiB | buffers |   µs | stream µs | pdl µs | GB/s | of copy | pdl of copy | regs |");
        Console.WriteLine("| ---    | ---           |       ---: |    ---: | ---: |      ---: |   ---: | ---: |    ---: |        ---: | ---: |");
        IntPtr e0 = s_cu.CreateEvent(), e1 = s_cu.CreateEvent();
        foreach (var f in s_benchFormats ?? Formats)
            foreach (var (rows, cols) in new[] { (4096, 4096), (14336, 4096), (4096, 14336) })
            {
                if (s_benchShape is not null && s_benchShape != $"{rows}x{cols}") continue;
                var rng = new Random(rows + cols);
                byte[] w = RandomWeights(f, rows, cols, rng);
                // Enough copies that the set is several times the L2 (50 MiB on an H100): each launch reads from DRAM.
                int copies = (int)Math.Clamp(Math.Ceiling(512.0 * (1 << 20) / w.Length), 3, 64);
                var weights = Enumerable.Range(0, copies).Select(_ => Upload<byte>(w)).ToList();
                using var xb = Upload<float>(Gaussians(rng, cols));
                using var qb = Quantized(xb, cols, 1);
                using var yb = Poisoned((long)rows * 4);
                var blocks = new byte[copies][];
                for (int i = 0; i < copies; i++)
                {
                    blocks[i] = new byte[ArgumentBlocks.Stride];
                    Pack("Gemv_" + f, blocks[i], [weights[i], xb, qb, yb, rows, cols, 1]);
                }
                nuint size = s_sizeOverride != 0 ? s_sizeOverride : (nuint)KernelTable.All[s_kernels["Gemv_" + f].Index].ArgumentBytes;
                void Round(bool programmatic = false)
                {
                    for (int i = 0; i < copies; i++)
                    {
                        var r = TryLaunch("Gemv_" + f, blocks[i], size, programmatic);
                        if (r != CuResult.Success) throw new CudaException($"cuLaunchKernel(Gemv_{f})", r);
                    }
                }
                Round(); Round();   // warm-up
                Check(cuStreamSynchronize(s_stream), "cuStreamSynchronize");
                // The launches of a round replayed as one CUDA graph, as the decode step runs them (ntrun captures
                // its step once): the figure is the kernel plus the GPU-side gap between kernels, without the
                // host's launch cost.
                IntPtr Capture(bool programmatic)
                {
                    IntPtr graph, instance;
                    Check(cuStreamBeginCapture(s_stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
                    Round(programmatic);
                    Check(cuStreamEndCapture(s_stream, &graph), "cuStreamEndCapture");
                    Check(cuGraphInstantiateWithFlags(&instance, graph, 0), "cuGraphInstantiateWithFlags");
                    Check(cuGraphDestroy(graph), "cuGraphDestroy");
                    Check(cuGraphLaunch(instance, s_stream), "cuGraphLaunch");
                    return instance;
                }
                IntPtr exec = Capture(false);
                double Median(bool replay)
                {
                    var us = new double[15];
                    for (int rep = 0; rep < us.Length; rep++)
                    {
                        Check(cuEventRecord(e0, s_stream), "cuEventRecord");
                        if (replay) Check(cuGraphLaunch(exec, s_stream), "cuGraphLaunch"); else Round();
                        Check(cuEventRecord(e1, s_stream), "cuEventRecord");
                        Check(cuEventSynchronize(e1), "cuEventSynchronize");
                        us[rep] = CudaContext.ElapsedMs(e0, e1) * 1e3 / copies;
                    }
                    Array.Sort(us);
                    return us[us.Length / 2];
                }
                double streamUs = Median(false), median = Median(true), gbs = w.Length / (median * 1e-6) / 1e9;
                cuGraphExecDestroy(exec);
                double pdlUs = double.NaN;
                if (pdl)
                {
                    exec = Capture(true);
                    pdlUs = Median(true);
                    cuGraphExecDestroy(exec);
                }
                double pdlGbs = w.Length / (pdlUs * 1e-6) / 1e9;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {f,-6} | {rows,5} x {cols,-5} | {w.Length / 1048576.0,10:F1} | {copies,7} | {median,4:F1} | {streamUs,9:F1} | {pdlUs,6:F1} | {gbs,4:F0} | {gbs / probe.DeviceCopyGBs,7:P0} | {pdlGbs / probe.DeviceCopyGBs,11:P0} | {FunctionRegs("Gemv_" + f)}/{FunctionRegs("GemvSwiGlu_" + f)} |"));
                foreach (var b in weights) b.Dispose();
            }
        cuEventDestroy(e0); cuEventDestroy(e1);
        if (!s_gemvOnly) PrefillMatmul();
    }

    /// <summary>Registers a thread of the entry, and "+N" for N bytes of local memory a thread (spills) where it has any.</summary>
    private static string FunctionRegs(string entry)
    {
        int regs = 0, local = 0;
        if (!s_kernels.TryGetValue(entry, out var kernel)) return "0";
        Check(cuFuncGetAttribute(&regs, CuFunctionAttribute.NumRegs, kernel.Function), "cuFuncGetAttribute");
        Check(cuFuncGetAttribute(&local, CuFunctionAttribute.LocalSizeBytes, kernel.Function), "cuFuncGetAttribute");
        return local > 0 ? $"{regs}+{local}" : regs.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Prefill: one 512-token matmul at the 8B shapes by the tiled GEMM (the batch kernel, 128-row tiles),
    /// and by the GEMV (4 tokens a group), µs by
    /// CUDA events (median of 9 after a warm-up) and effective TOPS (2·rows·cols·tokens / t); regs: registers a
    /// thread of the GEMM (cuFuncGetAttribute), which bound the groups an SM holds.</summary>
    private static void PrefillMatmul()
    {
        const int Tokens = 512;
        Console.WriteLine();
        Console.WriteLine($"prefill matmul, {Tokens} tokens:");
        Console.WriteLine("| format | rows x cols   | gemm µs | gemm TOPS | regs | gemv µs | gemv TOPS | gemm vs gemv |");
        Console.WriteLine("| ---    | ---           |    ---: |      ---: | ---: |    ---: |      ---: |         ---: |");
        IntPtr e0 = s_cu.CreateEvent(), e1 = s_cu.CreateEvent();
        foreach (var f in (s_benchFormats ?? Formats).Where(f => GgmlTypeInfo.BlockElements(f) > 1))
            foreach (var (rows, cols) in new[] { (4096, 4096), (14336, 4096), (4096, 14336) })
            {
                if (s_benchShape is not null && s_benchShape != $"{rows}x{cols}") continue;
                var rng = new Random(rows + cols);
                using var wb = Upload<byte>(RandomWeights(f, rows, cols, rng));
                using var xb = Upload<float>(Gaussians(rng, (long)cols * Tokens));
                using var qb = Quantized(xb, cols, Tokens);
                using var yb = Poisoned((long)rows * Tokens * 4);
                double Time(string entry)
                {
                    Span<byte> block = stackalloc byte[ArgumentBlocks.Stride];
                    Pack(entry, block, [wb, xb, qb, yb, rows, cols, Tokens]);
                    nuint size = s_sizeOverride != 0 ? s_sizeOverride : (nuint)KernelTable.All[s_kernels[entry].Index].ArgumentBytes;
                    var us = new double[9];
                    for (int rep = -1; rep < us.Length; rep++)
                    {
                        Check(cuEventRecord(e0, s_stream), "cuEventRecord");
                        var r = TryLaunch(entry, block, size);
                        if (r != CuResult.Success) throw new CudaException($"cuLaunchKernel({entry})", r);
                        Check(cuEventRecord(e1, s_stream), "cuEventRecord");
                        Check(cuEventSynchronize(e1), "cuEventSynchronize");
                        if (rep >= 0) us[rep] = CudaContext.ElapsedMs(e0, e1) * 1e3;
                    }
                    Array.Sort(us);
                    return us[us.Length / 2];
                }
                int Regs(string entry)
                {
                    int regs = 0;
                    Check(cuFuncGetAttribute(&regs, CuFunctionAttribute.NumRegs, s_kernels[entry].Function), "cuFuncGetAttribute");
                    return regs;
                }
                double gemm = Time("Gemm_" + f), gemv = Time("Gemv_" + f), ops = 2.0 * rows * cols * Tokens;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {f,-6} | {rows,5} x {cols,-5} | {gemm,7:F1} | {ops / gemm / 1e6,9:F1} | {Regs("Gemm_" + f),4} | {gemv,7:F1} | {ops / gemv / 1e6,9:F1} | {gemv / gemm,11:F1}x |"));
            }
        cuEventDestroy(e0); cuEventDestroy(e1);
    }
}
