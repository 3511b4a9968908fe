using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;

namespace Engine.Runtime.Cpu;

/// <summary>A weight storage format the CPU kernels are generic over: how one row of a matrix, stored as
/// consecutive blocks (ggml-common.h layouts, Blocks.cs), turns into f32. The JIT specialises every kernel per
/// format struct, so each format is compiled once and never copy-pasted (STYLE.md convention 2).</summary>
public unsafe interface IWeightFormat
{
    static abstract GgmlType Type { get; }
    /// <summary>True for F32, whose rows the kernels read in place instead of dequantizing.</summary>
    static abstract bool IsFloat32 { get; }
    static abstract int BlockElements { get; }
    static abstract int BlockBytes { get; }
    /// <summary>Dequantizes <paramref name="cols"/> weights (a multiple of the block) from <paramref name="row"/>.</summary>
    static abstract void DequantizeRow(byte* row, float* dst, int cols);
}

public unsafe struct F32Format : IWeightFormat
{
    public static GgmlType Type => GgmlType.F32;
    public static bool IsFloat32 => true;
    public static int BlockElements => 1;
    public static int BlockBytes => 4;
    public static void DequantizeRow(byte* row, float* dst, int cols) =>
        Buffer.MemoryCopy(row, dst, (long)cols * 4, (long)cols * 4);
}

public unsafe struct F16Format : IWeightFormat
{
    public static GgmlType Type => GgmlType.F16;
    public static bool IsFloat32 => false;
    public static int BlockElements => 1;
    public static int BlockBytes => 2;
    public static void DequantizeRow(byte* row, float* dst, int cols) =>
        System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(row, cols), new Span<float>(dst, cols));
}

/// <summary>BF16: the top 16 bits of an f32 (ggml_bf16_to_fp32).</summary>
public unsafe struct BF16Format : IWeightFormat
{
    public static GgmlType Type => GgmlType.BF16;
    public static bool IsFloat32 => false;
    public static int BlockElements => 1;
    public static int BlockBytes => 2;
    public static void DequantizeRow(byte* row, float* dst, int cols)
    {
        ushort* src = (ushort*)row;
        uint* d = (uint*)dst;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 16 <= cols; i += 16)
            {
                var h = Vector256.Load(src + i);
                var (lo, hi) = Vector256.Widen(h);
                Vector256.ShiftLeft(lo, 16).Store(d + i);
                Vector256.ShiftLeft(hi, 16).Store(d + i + 8);
            }
        for (; i < cols; i++) d[i] = (uint)src[i] << 16;
    }
}

/// <summary>Q8_0 (ggml-quants.c dequantize_row_q8_0): w = d * q.</summary>
public unsafe struct Q8_0Format : IWeightFormat
{
    public static GgmlType Type => GgmlType.Q8_0;
    public static bool IsFloat32 => false;
    public static int BlockElements => BlockQ8_0.Elements;
    public static int BlockBytes => BlockQ8_0.Size;
    public static void DequantizeRow(byte* row, float* dst, int cols)
    {
        var b = (BlockQ8_0*)row;
        for (int k = 0; k < cols / BlockQ8_0.Elements; k++, b++, dst += 32)
        {
            float d = (float)b->D;
            sbyte* q = b->Qs;
            if (Vector256.IsHardwareAccelerated)
            {
                Int8x32(Vector256.Load(q), d, dst);
            }
            else
                for (int j = 0; j < 32; j++) dst[j] = d * q[j];
        }
    }

    /// <summary>dst[j] = d * q[j] for 32 signed bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Int8x32(Vector256<sbyte> q, float d, float* dst)
    {
        var vd = Vector256.Create(d);
        var (s0, s1) = Vector256.Widen(q);
        var (i0, i1) = Vector256.Widen(s0);
        var (i2, i3) = Vector256.Widen(s1);
        (Vector256.ConvertToSingle(i0) * vd).Store(dst);
        (Vector256.ConvertToSingle(i1) * vd).Store(dst + 8);
        (Vector256.ConvertToSingle(i2) * vd).Store(dst + 16);
        (Vector256.ConvertToSingle(i3) * vd).Store(dst + 24);
    }
}

/// <summary>Q4_0 (dequantize_row_q4_0): w = d * (q - 8); byte j holds weight j (low nibble) and j + 16 (high).</summary>
public unsafe struct Q4_0Format : IWeightFormat
{
    public static GgmlType Type => GgmlType.Q4_0;
    public static bool IsFloat32 => false;
    public static int BlockElements => BlockQ4_0.Elements;
    public static int BlockBytes => BlockQ4_0.Size;
    public static void DequantizeRow(byte* row, float* dst, int cols)
    {
        var b = (BlockQ4_0*)row;
        for (int k = 0; k < cols / BlockQ4_0.Elements; k++, b++, dst += 32)
        {
            float d = (float)b->D;
            byte* q = b->Qs;
            if (Vector256.IsHardwareAccelerated)
            {
                var bytes = Vector128.Load(q);
                var lo = (bytes & Vector128.Create((byte)0x0F)).AsSByte() - Vector128.Create((sbyte)8);
                var hi = Vector128.ShiftRightLogical(bytes, 4).AsSByte() - Vector128.Create((sbyte)8);
                Q8_0Format.Int8x32(Vector256.Create(lo, hi), d, dst);                // weights 0..15 then 16..31
            }
            else
                for (int j = 0; j < 16; j++)
                {
                    dst[j] = d * ((q[j] & 0x0F) - 8);
                    dst[j + 16] = d * ((q[j] >> 4) - 8);
                }
        }
    }
}

/// <summary>The 6-bit scale and min of sub-block <paramref name="j"/> of a Q4_K/Q5_K super-block, packed in 12
/// bytes (ggml-quants.c get_scale_min_k4).</summary>
internal static unsafe class KQuantScales
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void ScaleMin(int j, byte* q, out int scale, out int min)
    {
        if (j < 4) { scale = q[j] & 63; min = q[j + 4] & 63; }
        else
        {
            scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    /// <summary>dst[l] = d * q[l] - m for 32 values given as bytes 0..31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Affine32(Vector256<byte> q, float d, float m, float* dst)
    {
        var vd = Vector256.Create(d);
        var vm = Vector256.Create(m);
        var (s0, s1) = Vector256.Widen(q);
        var (i0, i1) = Vector256.Widen(s0);
        var (i2, i3) = Vector256.Widen(s1);
        (Vector256.ConvertToSingle(i0.AsInt32()) * vd - vm).Store(dst);
        (Vector256.ConvertToSingle(i1.AsInt32()) * vd - vm).Store(dst + 8);
        (Vector256.ConvertToSingle(i2.AsInt32()) * vd - vm).Store(dst + 16);
        (Vector256.ConvertToSingle(i3.AsInt32()) * vd - vm).Store(dst + 24);
    }
}

/// <summary>Q4_K (dequantize_row_q4_K): 4 groups of 64; in each, 32 low nibbles then 32 high nibbles of the same
/// 32 bytes, w = d * sc - dmin * m per sub-block of 32.</summary>
public unsafe struct Q4_KFormat : IWeightFormat
{
    public static GgmlType Type => GgmlType.Q4_K;
    public static bool IsFloat32 => false;
    public static int BlockElements => BlockQ4_K.Elements;
    public static int BlockBytes => BlockQ4_K.Size;
    public static void DequantizeRow(byte* row, float* dst, int cols)
    {
        var b = (BlockQ4_K*)row;
        for (int k = 0; k < cols / BlockQ4_K.Elements; k++, b++)
        {
            float d = (float)b->D, dmin = (float)b->DMin;
            byte* q = b->Qs;
            for (int g = 0; g < 4; g++, q += 32, dst += 64)
            {
                KQuantScales.ScaleMin(2 * g, b->Scales, out int sc1, out int m1);
                KQuantScales.ScaleMin(2 * g + 1, b->Scales, out int sc2, out int m2);
                float d1 = d * sc1, dm1 = dmin * m1, d2 = d * sc2, dm2 = dmin * m2;
                if (Vector256.IsHardwareAccelerated)
                {
                    var bytes = Vector256.Load(q);
                    KQuantScales.Affine32(bytes & Vector256.Create((byte)0x0F), d1, dm1, dst);
                    KQuantScales.Affine32(Vector256.ShiftRightLogical(bytes, 4), d2, dm2, dst + 32);
                }
                else
                    for (int l = 0; l < 32; l++)
                    {
                        dst[l] = d1 * (q[l] & 0x0F) - dm1;
                        dst[l + 32] = d2 * (q[l] >> 4) - dm2;
                    }
            }
        }
    }
}

/// <summary>Q5_K (dequantize_row_q5_K): Q4_K plus a fifth bit per weight from qh (bit 2g for the low nibbles of
/// group g, bit 2g+1 for the high nibbles).</summary>
public unsafe struct Q5_KFormat : IWeightFormat
{
    public static GgmlType Type => GgmlType.Q5_K;
    public static bool IsFloat32 => false;
    public static int BlockElements => BlockQ5_K.Elements;
    public static int BlockBytes => BlockQ5_K.Size;
    public static void DequantizeRow(byte* row, float* dst, int cols)
    {
        var b = (BlockQ5_K*)row;
        for (int k = 0; k < cols / BlockQ5_K.Elements; k++, b++)
        {
            float d = (float)b->D, dmin = (float)b->DMin;
            byte* q = b->Qs;
            byte* qh = b->Qh;
            for (int g = 0; g < 4; g++, q += 32, dst += 64)
            {
                KQuantScales.ScaleMin(2 * g, b->Scales, out int sc1, out int m1);
                KQuantScales.ScaleMin(2 * g + 1, b->Scales, out int sc2, out int m2);
                float d1 = d * sc1, dm1 = dmin * m1, d2 = d * sc2, dm2 = dmin * m2;
                if (Vector256.IsHardwareAccelerated)
                {
                    var bytes = Vector256.Load(q);
                    var high = Vector256.Load(qh);
                    var one = Vector256.Create((byte)1);
                    var b1 = Vector256.ShiftLeft(Vector256.ShiftRightLogical(high, 2 * g) & one, 4);
                    var b2 = Vector256.ShiftLeft(Vector256.ShiftRightLogical(high, 2 * g + 1) & one, 4);
                    KQuantScales.Affine32((bytes & Vector256.Create((byte)0x0F)) | b1, d1, dm1, dst);
                    KQuantScales.Affine32(Vector256.ShiftRightLogical(bytes, 4) | b2, d2, dm2, dst + 32);
                }
                else
                {
                    int u1 = 1 << (2 * g), u2 = 2 << (2 * g);
                    for (int l = 0; l < 32; l++)
                    {
                        dst[l] = d1 * ((q[l] & 0x0F) + ((qh[l] & u1) != 0 ? 16 : 0)) - dm1;
                        dst[l + 32] = d2 * ((q[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - dm2;
                    }
                }
            }
        }
    }
}

/// <summary>Q6_K (dequantize_row_q6_K): two halves of 128; in each, weight l + 32i (i = 0..3) takes 4 low bits
/// from ql and 2 high bits from qh, w = d * scale[sub-block of 16] * (q - 32).</summary>
public unsafe struct Q6_KFormat : IWeightFormat
{
    public static GgmlType Type => GgmlType.Q6_K;
    public static bool IsFloat32 => false;
    public static int BlockElements => BlockQ6_K.Elements;
    public static int BlockBytes => BlockQ6_K.Size;
    public static void DequantizeRow(byte* row, float* dst, int cols)
    {
        var b = (BlockQ6_K*)row;
        for (int k = 0; k < cols / BlockQ6_K.Elements; k++, b++)
        {
            float d = (float)b->D;
            byte* ql = b->Ql;
            byte* qh = b->Qh;
            sbyte* sc = b->Scales;
            for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, dst += 128)
            {
                if (Vector256.IsHardwareAccelerated)
                {
                    var low = Vector256.Create((byte)0x0F);
                    var two = Vector256.Create((byte)3);
                    var a = Vector256.Load(ql);
                    var b2 = Vector256.Load(ql + 32);
                    var h = Vector256.Load(qh);
                    var q1 = (a & low) | Vector256.ShiftLeft(h & two, 4);
                    var q2 = (b2 & low) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(h, 2) & two, 4);
                    var q3 = Vector256.ShiftRightLogical(a, 4) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(h, 4) & two, 4);
                    var q4 = Vector256.ShiftRightLogical(b2, 4) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(h, 6), 4);
                    var bias = Vector256.Create((sbyte)32);
                    Int8x32TwoScales(q1.AsSByte() - bias, d * sc[0], d * sc[1], dst);
                    Int8x32TwoScales(q2.AsSByte() - bias, d * sc[2], d * sc[3], dst + 32);
                    Int8x32TwoScales(q3.AsSByte() - bias, d * sc[4], d * sc[5], dst + 64);
                    Int8x32TwoScales(q4.AsSByte() - bias, d * sc[6], d * sc[7], dst + 96);
                    continue;
                }
                for (int l = 0; l < 32; l++)
                {
                    int s = l / 16;
                    int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    dst[l] = d * sc[s] * q1;
                    dst[l + 32] = d * sc[s + 2] * q2;
                    dst[l + 64] = d * sc[s + 4] * q3;
                    dst[l + 96] = d * sc[s + 6] * q4;
                }
            }
        }
    }

    /// <summary>dst[j] = q[j] · (j &lt; 16 ? s0 : s1) for 32 signed bytes (two sub-blocks of 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Int8x32TwoScales(Vector256<sbyte> q, float s0, float s1, float* dst)
    {
        var v0 = Vector256.Create(s0);
        var v1 = Vector256.Create(s1);
        var (w0, w1) = Vector256.Widen(q);
        var (i0, i1) = Vector256.Widen(w0);
        var (i2, i3) = Vector256.Widen(w1);
        (Vector256.ConvertToSingle(i0) * v0).Store(dst);
        (Vector256.ConvertToSingle(i1) * v0).Store(dst + 8);
        (Vector256.ConvertToSingle(i2) * v1).Store(dst + 16);
        (Vector256.ConvertToSingle(i3) * v1).Store(dst + 24);
    }
}

/// <summary>A weight matrix in the mapped GGUF: <see cref="Rows"/> rows of <see cref="Columns"/> weights
/// (GGUF ne[1] × ne[0]), each row <see cref="RowBytes"/> bytes.</summary>
public readonly unsafe struct WeightMatrix(byte* data, GgmlType type, int rows, int columns)
{
    public readonly byte* Data = data;
    public readonly GgmlType Type = type;
    public readonly int Rows = rows;
    public readonly int Columns = columns;
    public long RowBytes => GgmlTypeInfo.RowBytes(Type, Columns);
    public byte* Row(int r) => Data + r * RowBytes;

    public static bool IsSupported(GgmlType t) => t is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0
        or GgmlType.Q4_0 or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K;

    /// <summary>Dequantizes row <paramref name="r"/> into <paramref name="dst"/> (Columns floats).</summary>
    public void DequantizeRow(int r, float* dst)
    {
        byte* row = Row(r);
        switch (Type)
        {
            case GgmlType.F32: F32Format.DequantizeRow(row, dst, Columns); break;
            case GgmlType.F16: F16Format.DequantizeRow(row, dst, Columns); break;
            case GgmlType.BF16: BF16Format.DequantizeRow(row, dst, Columns); break;
            case GgmlType.Q8_0: Q8_0Format.DequantizeRow(row, dst, Columns); break;
            case GgmlType.Q4_0: Q4_0Format.DequantizeRow(row, dst, Columns); break;
            case GgmlType.Q4_K: Q4_KFormat.DequantizeRow(row, dst, Columns); break;
            case GgmlType.Q5_K: Q5_KFormat.DequantizeRow(row, dst, Columns); break;
            case GgmlType.Q6_K: Q6_KFormat.DequantizeRow(row, dst, Columns); break;
            default: throw new NotSupportedException("weight type " + Type);
        }
    }
}
