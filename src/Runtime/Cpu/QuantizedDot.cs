using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;

namespace Engine.Runtime.Cpu;

/// <summary>Int8 dot products of quantized weight rows (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) with activations quantized
/// to 8 bits per block of 32 (ggml-cpu's quantize_row_q8_0, arch/x86/quants.c; ggml_vec_dot_q8_0_q8_0 and
/// ggml_vec_dot_q4_0_q8_0 for the 32-blocks). A weight byte is multiplied as an integer and never turned into a
/// float, so decode streams the weights once with a few integer instructions per 32 of them instead of dequantizing
/// each row into a scratch and dotting it again.
/// Activations are stored apart from their scales: <c>qs</c> 32 signed bytes per block (32-byte aligned loads),
/// <c>ds</c> one f32 per block, the f16-rounded scale ggml stores in block_q8_0, and <c>sums</c> one int per block,
/// Σ qs (what the K-quants' minimum term multiplies; block_q8_1 keeps the same, pre-scaled).
/// <para>K-quants against these 32-blocks (not ggml-cpu's Q8_K: the CUDA GEMV's mmvq uses Q8_1 blocks of 32 and the
/// two backends must agree): a super-block of 256 weights meets 8 activation blocks, and each activation block s
/// contributes ds_s · (d·sc_s · Σ q·qx − dmin·m_s · Σ qx) for Q4_K/Q5_K (ggml-cuda vecdotq.cuh
/// vec_dot_q4_K_q8_1_impl_vmmq), ds_s · d · (sc_2s · Σ_first16 (q−32)·qx + sc_2s+1 · Σ_next16 (q−32)·qx) for Q6_K:
/// integer inside a block, f32 across blocks.</para></summary>
public static unsafe class QuantizedDot
{
    /// <summary>Weight types whose matmul uses 8-bit activations (block of 32, f16 scale).</summary>
    public static bool UsesInt8Activations(GgmlType type) =>
        type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    /// <summary>f16 → f32 for every bit pattern (256 KiB): ggml's ggml_table_f32_f16. The block scales are
    /// f16 and a table load is cheaper per block than the software conversion of <see cref="Half"/>.</summary>
    private static readonly float* HalfToSingle = BuildHalfTable();

    private static float* BuildHalfTable()
    {
        var t = (float*)NativeMemory.AlignedAlloc(65536 * sizeof(float), 64);
        for (int i = 0; i < 65536; i++) t[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return t;
    }


    /// <summary>Quantizes <paramref name="cols"/> (a multiple of 32) activations as quantize_row_q8_0 does:
    /// d = max|x| / 127 rounded to f16, q = round-to-nearest-even(x · 127 / max|x|); <paramref name="sums"/>
    /// (when not null) gets Σ q of each block.</summary>
    public static void QuantizeRow(float* x, int cols, sbyte* qs, float* ds, int* sums = null)
    {
        for (int k = 0; k < cols / 32; k++, x += 32, qs += 32)
        {
            float amax;
            int sum;
            if (Vector256.IsHardwareAccelerated)
            {
                var v0 = Vector256.Load(x); var v1 = Vector256.Load(x + 8);
                var v2 = Vector256.Load(x + 16); var v3 = Vector256.Load(x + 24);
                amax = HorizontalMax(Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)),
                    Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3))));
                var id = Vector256.Create(amax != 0 ? 127f / amax : 0f);
                var i0 = Vector256.ConvertToInt32(Vector256.Round(v0 * id));
                var i1 = Vector256.ConvertToInt32(Vector256.Round(v1 * id));
                var i2 = Vector256.ConvertToInt32(Vector256.Round(v2 * id));
                var i3 = Vector256.ConvertToInt32(Vector256.Round(v3 * id));
                Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3)).Store(qs);   // |q| ≤ 127: no saturation needed
                sum = Vector256.Sum((i0 + i1) + (i2 + i3));
            }
            else
            {
                amax = 0;
                for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[j]));
                float id = amax != 0 ? 127f / amax : 0f;
                sum = 0;
                for (int j = 0; j < 32; j++) sum += qs[j] = (sbyte)MathF.Round(x[j] * id, MidpointRounding.ToEven);
            }
            ds[k] = (float)(Half)(amax / 127f);
            if (sums != null) sums[k] = sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax(Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    /// <summary>Σ over <paramref name="blocks"/> blocks of d_w·d_x·Σ q_w·q_x for a Q8_0 weight row.</summary>
    public static float DotQ8_0(byte* row, sbyte* qs, float* ds, int blocks) =>
        Avx2.IsSupported ? Dot<Q8_0Blocks>(row, qs, ds, blocks) : DotScalar<Q8_0Blocks>(row, qs, ds, blocks);

    /// <summary>Σ over <paramref name="blocks"/> blocks of d_w·d_x·Σ (q_w − 8)·q_x for a Q4_0 weight row.</summary>
    public static float DotQ4_0(byte* row, sbyte* qs, float* ds, int blocks) =>
        Avx2.IsSupported ? Dot<Q4_0Blocks>(row, qs, ds, blocks) : DotScalar<Q4_0Blocks>(row, qs, ds, blocks);

    /// <summary>A Q4_K row of <paramref name="blocks"/> / 8 super-blocks with one token's activations (the class
    /// comment gives the formula; <paramref name="sums"/> are the blocks' Σ qs from <see cref="QuantizeRow"/>).</summary>
    public static float DotQ4_K(byte* row, sbyte* qs, float* ds, int* sums, int blocks) =>
        Avx2.IsSupported ? DotAffineK<Q4_KBlocks>(row, qs, ds, sums, blocks) : DotAffineKScalar<Q4_KBlocks>(row, qs, ds, sums, blocks);

    /// <summary>A Q5_K row, as <see cref="DotQ4_K"/>.</summary>
    public static float DotQ5_K(byte* row, sbyte* qs, float* ds, int* sums, int blocks) =>
        Avx2.IsSupported ? DotAffineK<Q5_KBlocks>(row, qs, ds, sums, blocks) : DotAffineKScalar<Q5_KBlocks>(row, qs, ds, sums, blocks);

    /// <summary>A Q6_K row of <paramref name="blocks"/> / 8 super-blocks with one token's activations.</summary>
    public static float DotQ6_K(byte* row, sbyte* qs, float* ds, int blocks) =>
        Avx2.IsSupported ? DotQ6_KAvx2(row, qs, ds, blocks) : DotQ6_KScalar(row, qs, ds, blocks);

    // The scalar kernels: the fallback without AVX2, and the tests' oracle for the SIMD ones.
    public static float DotQ8_0Scalar(byte* row, sbyte* qs, float* ds, int blocks) => DotScalar<Q8_0Blocks>(row, qs, ds, blocks);
    public static float DotQ4_0Scalar(byte* row, sbyte* qs, float* ds, int blocks) => DotScalar<Q4_0Blocks>(row, qs, ds, blocks);
    public static float DotQ4_KScalar(byte* row, sbyte* qs, float* ds, int* sums, int blocks) => DotAffineKScalar<Q4_KBlocks>(row, qs, ds, sums, blocks);
    public static float DotQ5_KScalar(byte* row, sbyte* qs, float* ds, int* sums, int blocks) => DotAffineKScalar<Q5_KBlocks>(row, qs, ds, sums, blocks);

    /// <summary>y[j · yStride] = the dot of one weight row with token j's activations, for 4 tokens whose
    /// activations are <paramref name="xStride"/> bytes (and xStride / 32 scales and sums) apart: each weight block is
    /// loaded and decoded once for the 4 (a prompt's GEMM; decode uses the single-token dot).</summary>
    public static void Dot4(GgmlType type, byte* row, sbyte* qs, float* ds, int* sums, int xStride, int blocks, float* y, long yStride)
    {
        if (!Avx2.IsSupported)
        {
            int dStride = xStride / 32;
            for (int j = 0; j < 4; j++) y[j * yStride] = Dot(type, row, qs + j * xStride, ds + j * dStride, sums + j * dStride, blocks);
            return;
        }
        switch (type)
        {
            case GgmlType.Q8_0: Dot4<Q8_0Blocks>(row, qs, ds, xStride, blocks, y, yStride); break;
            case GgmlType.Q4_0: Dot4<Q4_0Blocks>(row, qs, ds, xStride, blocks, y, yStride); break;
            case GgmlType.Q4_K: Dot4AffineK<Q4_KBlocks>(row, qs, ds, sums, xStride, blocks, y, yStride); break;
            case GgmlType.Q5_K: Dot4AffineK<Q5_KBlocks>(row, qs, ds, sums, xStride, blocks, y, yStride); break;
            case GgmlType.Q6_K: Dot4Q6_K(row, qs, ds, xStride, blocks, y, yStride); break;
            default: throw new NotSupportedException("int8 dot of " + type);
        }
    }

    /// <summary>One weight row (any type <see cref="UsesInt8Activations"/> accepts) with one token's activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot(GgmlType type, byte* row, sbyte* qs, float* ds, int* sums, int blocks) => type switch
    {
        GgmlType.Q8_0 => DotQ8_0(row, qs, ds, blocks),
        GgmlType.Q4_0 => DotQ4_0(row, qs, ds, blocks),
        GgmlType.Q4_K => DotQ4_K(row, qs, ds, sums, blocks),
        GgmlType.Q5_K => DotQ5_K(row, qs, ds, sums, blocks),
        GgmlType.Q6_K => DotQ6_K(row, qs, ds, blocks),
        _ => throw new NotSupportedException("int8 dot of " + type),
    };

    /// <summary>The block layouts the int8 kernels are generic over (STYLE.md convention 2): a block starts with its
    /// f16 scale and holds 32 weights, given back as signed bytes.</summary>
    private interface IInt8Blocks
    {
        static abstract int Bytes { get; }
        static abstract Vector256<sbyte> Weights(byte* block);
        static abstract sbyte Weight(byte* block, int j);
    }

    private struct Q8_0Blocks : IInt8Blocks
    {
        public static int Bytes => BlockQ8_0.Size;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Weights(byte* block) => Vector256.Load((sbyte*)(block + 2));
        public static sbyte Weight(byte* block, int j) => ((sbyte*)(block + 2))[j];
    }

    /// <summary>Q4_0: byte j holds weight j in its low nibble and weight j + 16 in its high nibble, w = q − 8
    /// (ggml bytes_from_nibbles_32).</summary>
    private struct Q4_0Blocks : IInt8Blocks
    {
        public static int Bytes => BlockQ4_0.Size;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Weights(byte* block)
        {
            var bytes = Vector128.Load(block + 2);
            var lo = bytes & Vector128.Create((byte)0x0F);
            var hi = Vector128.ShiftRightLogical(bytes, 4);
            return Vector256.Create(lo, hi).AsSByte() - Vector256.Create((sbyte)8);
        }
        public static sbyte Weight(byte* block, int j) => (sbyte)((j < 16 ? block[2 + j] & 0x0F : block[2 + j - 16] >> 4) - 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float BlockScale(float* table, byte* block) => table[*(ushort*)block];

    // Each kernel reads the table into a local once: a static read inside the loop keeps a class-initialization
    // check there (and spills the accumulators around it) until tiering recompiles the method.
    private static float Dot<T>(byte* w, sbyte* qs, float* ds, int blocks) where T : IInt8Blocks
    {
        float* table = HalfToSingle;
        int n = T.Bytes;
        // Four independent accumulators: the FMA latency chain would otherwise bound a row (ggml unrolls by 2..4).
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int k = 0;
        for (; k + 4 <= blocks; k += 4, w += 4 * n, qs += 128)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w) * ds[k]), Products(T.Weights(w), Vector256.Load(qs)), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w + n) * ds[k + 1]), Products(T.Weights(w + n), Vector256.Load(qs + 32)), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w + 2 * n) * ds[k + 2]), Products(T.Weights(w + 2 * n), Vector256.Load(qs + 64)), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w + 3 * n) * ds[k + 3]), Products(T.Weights(w + 3 * n), Vector256.Load(qs + 96)), a3);
        }
        for (; k < blocks; k++, w += n, qs += 32)
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w) * ds[k]), Products(T.Weights(w), Vector256.Load(qs)), a0);
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }

    private static void Dot4<T>(byte* w, sbyte* qs, float* ds, int xStride, int blocks, float* y, long yStride) where T : IInt8Blocks
    {
        float* table = HalfToSingle;
        int n = T.Bytes, dStride = xStride / 32;
        sbyte* q0 = qs, q1 = qs + xStride, q2 = qs + 2 * xStride, q3 = qs + 3 * xStride;
        float* d0 = ds, d1 = ds + dStride, d2 = ds + 2 * dStride, d3 = ds + 3 * dStride;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int k = 0; k < blocks; k++, w += n)
        {
            var wv = T.Weights(w);
            var aw = Avx2.Abs(wv);
            float dw = BlockScale(table, w);
            int o = 32 * k;
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(dw * d0[k]), Products(aw, wv, Vector256.Load(q0 + o)), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(dw * d1[k]), Products(aw, wv, Vector256.Load(q1 + o)), a1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(dw * d2[k]), Products(aw, wv, Vector256.Load(q2 + o)), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Create(dw * d3[k]), Products(aw, wv, Vector256.Load(q3 + o)), a3);
        }
        y[0] = Vector256.Sum(a0);
        y[yStride] = Vector256.Sum(a1);
        y[2 * yStride] = Vector256.Sum(a2);
        y[3 * yStride] = Vector256.Sum(a3);
    }

    private static float DotScalar<T>(byte* w, sbyte* qs, float* ds, int blocks) where T : IInt8Blocks
    {
        float* table = HalfToSingle;
        float sum = 0;
        for (int k = 0; k < blocks; k++, w += T.Bytes, qs += 32)
        {
            int s = 0;
            for (int j = 0; j < 32; j++) s += T.Weight(w, j) * qs[j];
            sum += s * (BlockScale(table, w) * ds[k]);
        }
        return sum;
    }

    // ---- K-quants ----------------------------------------------------------------------------------------------

    /// <summary>Q4_K and Q5_K super-blocks (ggml-common.h block_q4_K, block_q5_K): f16 d and dmin, the 6-bit scales
    /// and mins of 8 sub-blocks of 32 packed in 12 bytes at offset 4, then unsigned weights q with
    /// w = d·sc·q − dmin·m.</summary>
    private interface IAffineKBlocks
    {
        static abstract int Bytes { get; }
        /// <summary>q of sub-blocks 2g (<paramref name="lo"/>) and 2g + 1 (<paramref name="hi"/>), 32 each.</summary>
        static abstract void Weights(byte* block, int g, out Vector256<byte> lo, out Vector256<byte> hi);
        /// <summary>q of weight <paramref name="i"/> (0..255) of the super-block.</summary>
        static abstract int Weight(byte* block, int i);
    }

    /// <summary>Q4_K: qs[128] at offset 16; group g of 64 weights is 32 bytes, low nibbles then high nibbles.</summary>
    private struct Q4_KBlocks : IAffineKBlocks
    {
        public static int Bytes => BlockQ4_K.Size;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Weights(byte* block, int g, out Vector256<byte> lo, out Vector256<byte> hi)
        {
            var bytes = Vector256.Load(block + 16 + 32 * g);
            var nibble = Vector256.Create((byte)0x0F);
            lo = bytes & nibble;
            hi = Vector256.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble;
        }
        public static int Weight(byte* block, int i)
        {
            byte b = block[16 + 32 * (i / 64) + i % 32];
            return i % 64 < 32 ? b & 0x0F : b >> 4;
        }
    }

    /// <summary>Q5_K: qh[32] at offset 16, qs[128] at 48; the fifth bit of weight l of sub-block s is bit s of qh[l]
    /// (dequantize_row_q5_K).</summary>
    private struct Q5_KBlocks : IAffineKBlocks
    {
        public static int Bytes => BlockQ5_K.Size;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Weights(byte* block, int g, out Vector256<byte> lo, out Vector256<byte> hi)
        {
            var bytes = Vector256.Load(block + 48 + 32 * g);
            var high = Vector256.Load(block + 16).AsUInt16();
            var nibble = Vector256.Create((byte)0x0F);
            var bit4 = Vector256.Create((byte)0x10);
            // Bit 2g (2g + 1) of each byte moved to bit 4 by one 16-bit shift: no bit that crosses a byte boundary
            // lands on bit 4, and the mask drops the rest.
            lo = (bytes & nibble) | (Shift(high, 4 - 2 * g).AsByte() & bit4);
            hi = (Vector256.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble) | (Shift(high, 3 - 2 * g).AsByte() & bit4);
        }
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<ushort> Shift(Vector256<ushort> v, int left) =>
            left >= 0 ? Vector256.ShiftLeft(v, left) : Vector256.ShiftRightLogical(v, -left);
        public static int Weight(byte* block, int i) =>
            Q4_KBlocks.Weight(block + 32, i) | ((block[16 + i % 32] >> (i / 32)) & 1) << 4;
    }

    /// <summary>The 8 scales and 8 mins of a Q4_K/Q5_K super-block as floats: the 12 bytes unpacked with 32-bit masks
    /// (the get_scale_min_k4 layout; ggml's x86 vec_dot_q4_K does the same with its kmask1..3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScalesAndMins(byte* packed, out Vector256<float> scales, out Vector256<float> mins)
    {
        uint u0 = *(uint*)packed, u1 = *(uint*)(packed + 4), u2 = *(uint*)(packed + 8);
        const uint low6 = 0x3F3F3F3F, low4 = 0x0F0F0F0F, low2 = 0x03030303;
        uint sc03 = u0 & low6, mn03 = u1 & low6;                                  // sub-blocks 0..3: low 6 bits
        uint sc47 = (u2 & low4) | (((u0 >> 6) & low2) << 4);                       // 4..7: a nibble of bytes 8..11
        uint mn47 = ((u2 >> 4) & low4) | (((u1 >> 6) & low2) << 4);                // and the top 2 bits of bytes 0..7
        scales = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Vector128.Create(sc03, sc47, 0, 0).AsByte()));
        mins = Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Vector128.Create(mn03, mn47, 0, 0).AsByte()));
    }

    private static float DotAffineK<T>(byte* w, sbyte* qs, float* ds, int* sums, int blocks) where T : IAffineKBlocks
    {
        float* table = HalfToSingle;
        float* scale = stackalloc float[8];
        // Four accumulators for the sub-blocks (two FMA chains per group of 64), one for the minimum terms.
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, am = default;
        for (int sb = 0; sb < blocks / 8; sb++, w += T.Bytes, qs += 256, ds += 8, sums += 8)
        {
            ScalesAndMins(w + 4, out var sc, out var mn);
            var dx = Vector256.Load(ds);
            (Vector256.Create(BlockScale(table, w)) * sc * dx).Store(scale);          // d·sc_s·ds_s
            am = Vector256.FusedMultiplyAdd(Vector256.Create(BlockScale(table, w + 2)) * mn * dx,
                Vector256.ConvertToSingle(Vector256.Load(sums)), am);                // dmin·m_s·ds_s · Σ qx
            T.Weights(w, 0, out var l0, out var h0);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(scale[0]), Products(l0, Vector256.Load(qs)), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(scale[1]), Products(h0, Vector256.Load(qs + 32)), a1);
            T.Weights(w, 1, out var l1, out var h1);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(scale[2]), Products(l1, Vector256.Load(qs + 64)), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Create(scale[3]), Products(h1, Vector256.Load(qs + 96)), a3);
            T.Weights(w, 2, out var l2, out var h2);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Create(scale[4]), Products(l2, Vector256.Load(qs + 128)), a0);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Create(scale[5]), Products(h2, Vector256.Load(qs + 160)), a1);
            T.Weights(w, 3, out var l3, out var h3);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Create(scale[6]), Products(l3, Vector256.Load(qs + 192)), a2);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Create(scale[7]), Products(h3, Vector256.Load(qs + 224)), a3);
        }
        return Vector256.Sum((a0 + a1) + (a2 + a3)) - Vector256.Sum(am);
    }

    private static void Dot4AffineK<T>(byte* w, sbyte* qs, float* ds, int* sums, int xStride, int blocks, float* y, long yStride)
        where T : IAffineKBlocks
    {
        float* table = HalfToSingle;
        float* scale = stackalloc float[32];   // [token][sub-block] d·sc_s·ds_s
        int dStride = xStride / 32;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        for (int sb = 0; sb < blocks / 8; sb++, w += T.Bytes)
        {
            ScalesAndMins(w + 4, out var sc, out var mn);
            var dsc = Vector256.Create(BlockScale(table, w)) * sc;
            var dmn = Vector256.Create(BlockScale(table, w + 2)) * mn;
            float* d = ds + 8 * sb;
            int* s = sums + 8 * sb;
            (dsc * Vector256.Load(d)).Store(scale);
            (dsc * Vector256.Load(d + dStride)).Store(scale + 8);
            (dsc * Vector256.Load(d + 2 * dStride)).Store(scale + 16);
            (dsc * Vector256.Load(d + 3 * dStride)).Store(scale + 24);
            m0 = Vector256.FusedMultiplyAdd(dmn * Vector256.Load(d), Vector256.ConvertToSingle(Vector256.Load(s)), m0);
            m1 = Vector256.FusedMultiplyAdd(dmn * Vector256.Load(d + dStride), Vector256.ConvertToSingle(Vector256.Load(s + dStride)), m1);
            m2 = Vector256.FusedMultiplyAdd(dmn * Vector256.Load(d + 2 * dStride), Vector256.ConvertToSingle(Vector256.Load(s + 2 * dStride)), m2);
            m3 = Vector256.FusedMultiplyAdd(dmn * Vector256.Load(d + 3 * dStride), Vector256.ConvertToSingle(Vector256.Load(s + 3 * dStride)), m3);
            sbyte* x = qs + 256 * sb;
            for (int g = 0; g < 4; g++, x += 64)
            {
                T.Weights(w, g, out var lo, out var hi);
                a0 = Group(a0, scale[2 * g], scale[2 * g + 1], lo, hi, x);
                a1 = Group(a1, scale[8 + 2 * g], scale[8 + 2 * g + 1], lo, hi, x + xStride);
                a2 = Group(a2, scale[16 + 2 * g], scale[16 + 2 * g + 1], lo, hi, x + 2 * xStride);
                a3 = Group(a3, scale[24 + 2 * g], scale[24 + 2 * g + 1], lo, hi, x + 3 * xStride);
            }
        }
        y[0] = Vector256.Sum(a0) - Vector256.Sum(m0);
        y[yStride] = Vector256.Sum(a1) - Vector256.Sum(m1);
        y[2 * yStride] = Vector256.Sum(a2) - Vector256.Sum(m2);
        y[3 * yStride] = Vector256.Sum(a3) - Vector256.Sum(m3);
    }

    /// <summary>acc + s0 · (lo · x[0..32]) + s1 · (hi · x[32..64]): one group of 64 weights of an affine K-quant.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Group(Vector256<float> acc, float s0, float s1, Vector256<byte> lo, Vector256<byte> hi, sbyte* x) =>
        Vector256.FusedMultiplyAdd(Vector256.Create(s1), Products(hi, Vector256.Load(x + 32)),
            Vector256.FusedMultiplyAdd(Vector256.Create(s0), Products(lo, Vector256.Load(x)), acc));

    private static float DotAffineKScalar<T>(byte* w, sbyte* qs, float* ds, int* sums, int blocks) where T : IAffineKBlocks
    {
        float* table = HalfToSingle;
        float sum = 0;
        for (int sb = 0; sb < blocks / 8; sb++, w += T.Bytes)
        {
            float d = BlockScale(table, w), dmin = BlockScale(table, w + 2);
            for (int s = 0; s < 8; s++)
            {
                KQuantScales.ScaleMin(s, w + 4, out int sc, out int m);
                int k = 8 * sb + s, dot = 0;
                for (int i = 0; i < 32; i++) dot += T.Weight(w, 32 * s + i) * qs[32 * k + i];
                sum += ds[k] * (d * sc * dot - dmin * m * sums[k]);
            }
        }
        return sum;
    }

    /// <summary>Q6_K (block_q6_K: ql[128], qh[64], int8 scales[16], f16 d at 208): the 32 signed weights q − 32 of
    /// activation block i (0..3) of half h, whose 128 weights take ql[64h..], qh[32h..] (dequantize_row_q6_K).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6_KWeights(byte* ql, byte* qh, out Vector256<sbyte> q0, out Vector256<sbyte> q1, out Vector256<sbyte> q2, out Vector256<sbyte> q3)
    {
        var a = Vector256.Load(ql).AsUInt16();
        var b = Vector256.Load(ql + 32).AsUInt16();
        var h = Vector256.Load(qh).AsUInt16();
        var nibble = Vector256.Create((ushort)0x0F0F);
        var top = Vector256.Create((ushort)0x3030);   // bits 4, 5 of each byte: the 2 high bits of q
        var bias = Vector256.Create((sbyte)32);
        // 16-bit shifts; whatever crosses a byte boundary is masked off.
        q0 = ((a & nibble) | (Vector256.ShiftLeft(h, 4) & top)).AsSByte() - bias;
        q1 = ((b & nibble) | (Vector256.ShiftLeft(h, 2) & top)).AsSByte() - bias;
        q2 = ((Vector256.ShiftRightLogical(a, 4) & nibble) | (h & top)).AsSByte() - bias;
        q3 = ((Vector256.ShiftRightLogical(b, 4) & nibble) | (Vector256.ShiftRightLogical(h, 2) & top)).AsSByte() - bias;
    }

    /// <summary>d·sc_t for the 16 sub-blocks of 16 of a Q6_K super-block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6_KScales(byte* w, float d, out Vector256<float> s0, out Vector256<float> s1)
    {
        var vd = Vector256.Create(d);
        s0 = vd * Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)(w + 192)));
        s1 = vd * Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32((sbyte*)(w + 200)));
    }

    /// <summary>The 16 sub-block factors f_t = d·sc_t·ds_{t/2} of a Q6_K super-block, for one token's 8 activation
    /// scales dx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6_KFactors(Vector256<float> s0, Vector256<float> s1, Vector256<float> dx, out Vector256<float> f0, out Vector256<float> f1)
    {
        f0 = s0 * Avx2.PermuteVar8x32(dx, Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3));
        f1 = s1 * Avx2.PermuteVar8x32(dx, Vector256.Create(4, 4, 5, 5, 6, 6, 7, 7));
    }

    /// <summary>The products of a block of 32 signed weights with 32 activations come out of vpmaddwd as 4 lanes of
    /// sub-block 2i (bytes 0..15) then 4 of 2i + 1: the factor vector for them is f_2i ×4, f_2i+1 ×4.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> PairFactors(Vector256<float> f, int i) =>
        Avx2.PermuteVar8x32(f, Vector256.Create(2 * i, 2 * i, 2 * i, 2 * i, 2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1));

    private static float DotQ6_KAvx2(byte* w, sbyte* qs, float* ds, int blocks)
    {
        float* table = HalfToSingle;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int sb = 0; sb < blocks / 8; sb++, w += BlockQ6_K.Size, qs += 256, ds += 8)
        {
            Q6_KScales(w, BlockScale(table, w + 208), out var s0, out var s1);
            Q6_KFactors(s0, s1, Vector256.Load(ds), out var f0, out var f1);
            Q6_KWeights(w, w + 128, out var q0, out var q1, out var q2, out var q3);
            a0 = Vector256.FusedMultiplyAdd(PairFactors(f0, 0), Products(q0, Vector256.Load(qs)), a0);
            a1 = Vector256.FusedMultiplyAdd(PairFactors(f0, 1), Products(q1, Vector256.Load(qs + 32)), a1);
            a2 = Vector256.FusedMultiplyAdd(PairFactors(f0, 2), Products(q2, Vector256.Load(qs + 64)), a2);
            a3 = Vector256.FusedMultiplyAdd(PairFactors(f0, 3), Products(q3, Vector256.Load(qs + 96)), a3);
            Q6_KWeights(w + 64, w + 160, out q0, out q1, out q2, out q3);
            a0 = Vector256.FusedMultiplyAdd(PairFactors(f1, 0), Products(q0, Vector256.Load(qs + 128)), a0);
            a1 = Vector256.FusedMultiplyAdd(PairFactors(f1, 1), Products(q1, Vector256.Load(qs + 160)), a1);
            a2 = Vector256.FusedMultiplyAdd(PairFactors(f1, 2), Products(q2, Vector256.Load(qs + 192)), a2);
            a3 = Vector256.FusedMultiplyAdd(PairFactors(f1, 3), Products(q3, Vector256.Load(qs + 224)), a3);
        }
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }

    private static void Dot4Q6_K(byte* w, sbyte* qs, float* ds, int xStride, int blocks, float* y, long yStride)
    {
        float* table = HalfToSingle;
        float* factors = stackalloc float[64];   // [token][sub-block of 16]
        int dStride = xStride / 32;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int sb = 0; sb < blocks / 8; sb++, w += BlockQ6_K.Size)
        {
            Q6_KScales(w, BlockScale(table, w + 208), out var s0, out var s1);
            for (int j = 0; j < 4; j++)
            {
                Q6_KFactors(s0, s1, Vector256.Load(ds + j * dStride + 8 * sb), out var f0, out var f1);
                f0.Store(factors + 16 * j);
                f1.Store(factors + 16 * j + 8);
            }
            for (int h = 0; h < 2; h++)
            {
                Q6_KWeights(w + 64 * h, w + 128 + 32 * h, out var q0, out var q1, out var q2, out var q3);
                sbyte* x = qs + 256 * sb + 128 * h;
                float* f = factors + 8 * h;
                a0 = Half6(a0, f, q0, q1, q2, q3, x);
                a1 = Half6(a1, f + 16, q0, q1, q2, q3, x + xStride);
                a2 = Half6(a2, f + 32, q0, q1, q2, q3, x + 2 * xStride);
                a3 = Half6(a3, f + 48, q0, q1, q2, q3, x + 3 * xStride);
            }
        }
        y[0] = Vector256.Sum(a0);
        y[yStride] = Vector256.Sum(a1);
        y[2 * yStride] = Vector256.Sum(a2);
        y[3 * yStride] = Vector256.Sum(a3);
    }

    /// <summary>acc + the 128 weights of one Q6_K half against one token's 4 activation blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Half6(Vector256<float> acc, float* f, Vector256<sbyte> q0, Vector256<sbyte> q1,
        Vector256<sbyte> q2, Vector256<sbyte> q3, sbyte* x)
    {
        var fv = Vector256.Load(f);
        acc = Vector256.FusedMultiplyAdd(PairFactors(fv, 0), Products(q0, Vector256.Load(x)), acc);
        acc = Vector256.FusedMultiplyAdd(PairFactors(fv, 1), Products(q1, Vector256.Load(x + 32)), acc);
        acc = Vector256.FusedMultiplyAdd(PairFactors(fv, 2), Products(q2, Vector256.Load(x + 64)), acc);
        return Vector256.FusedMultiplyAdd(PairFactors(fv, 3), Products(q3, Vector256.Load(x + 96)), acc);
    }

    public static float DotQ6_KScalar(byte* w, sbyte* qs, float* ds, int blocks)
    {
        float* table = HalfToSingle;
        float sum = 0;
        for (int sb = 0; sb < blocks / 8; sb++, w += BlockQ6_K.Size)
        {
            float d = BlockScale(table, w + 208);
            sbyte* sc = (sbyte*)(w + 192);
            for (int s = 0; s < 8; s++)
            {
                int half = s / 4, i = s % 4, k = 8 * sb + s, dot0 = 0, dot1 = 0;
                byte* ql = w + 64 * half + 32 * (i & 1);
                byte* qh = w + 128 + 32 * half;
                for (int l = 0; l < 32; l++)
                {
                    int q = ((ql[l] >> (4 * (i >> 1))) & 0x0F) | (((qh[l] >> (2 * i)) & 3) << 4);
                    int p = (q - 32) * qs[32 * k + l];
                    if (l < 16) dot0 += p; else dot1 += p;
                }
                sum += ds[k] * d * (sc[2 * s] * dot0 + sc[2 * s + 1] * dot1);
            }
        }
        return sum;
    }

    /// <summary>Eight partial sums of w·x over 32 signed bytes, as floats (ggml mul_sum_i8_pairs_float):
    /// vpmaddubsw multiplies unsigned by signed bytes, so |w| is paired with x carrying w's sign. |w| ≤ 128 and
    /// |x| ≤ 127 keep each pair sum within int16 (2 · 128 · 127 &lt; 32768).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Products(Vector256<sbyte> w, Vector256<sbyte> x) => Products(Avx2.Abs(w), w, x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Products(Vector256<byte> absW, Vector256<sbyte> w, Vector256<sbyte> x)
    {
        var pairs = Avx2.MultiplyAddAdjacent(absW, Avx2.Sign(x, w));
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1)));
    }

    /// <summary>Eight partial sums of q·x over 32 bytes of unsigned weights (0..63), as floats: vpmaddubsw takes
    /// them as they are (2 · 63 · 127 &lt; 32768).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Products(Vector256<byte> q, Vector256<sbyte> x) =>
        Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, x), Vector256.Create((short)1)));
}
