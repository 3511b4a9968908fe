using System.Buffers.Binary;
using Engine.Plans.Gguf;

namespace Engine.Kernels.Tests.Reference;

/// <summary>Scalar float64 reference for the weight formats: random test rows and dequantisation written after
/// ggml's dequantize_row_* loops (ggml-quants.c), independently of the kernels' unit decomposition.</summary>
public static class ReferenceFormats
{
    public static readonly string[] All = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"];

    /// <summary>The block (quantized) formats of <see cref="All"/>: those with an int8 lane loop and an f32act entry.</summary>
    public static readonly string[] Quantized = All.Where(f => BlockElements(f) > 1).ToArray();

    public static GgmlType Type(string format) => Enum.Parse<GgmlType>(format);

    public static int BlockElements(string format) => GgmlTypeInfo.BlockElements(Type(format));

    public static int BlockBytes(string format) => GgmlTypeInfo.BlockBytes(Type(format));

    /// <summary>Random weights: any bit pattern is a valid quant, so quant bytes are random; scales (f16 d, dmin)
    /// are random in a realistic range; float formats hold N(0,1)-ish values.</summary>
    public static byte[] Random(string format, int rows, int cols, Random rng)
    {
        int be = BlockElements(format), bb = BlockBytes(format);
        if (cols % be != 0) throw new ArgumentException($"{format}: cols {cols} not a multiple of {be}");
        var data = new byte[(long)rows * cols / be * bb];
        rng.NextBytes(data);
        int blocks = data.Length / bb;
        for (int b = 0; b < blocks; b++)
        {
            var block = data.AsSpan(b * bb, bb);
            switch (format)
            {
                case "F32": BinaryPrimitives.WriteSingleLittleEndian(block, Gaussian(rng)); break;
                case "F16": BinaryPrimitives.WriteHalfLittleEndian(block, (Half)Gaussian(rng)); break;
                case "BF16": BinaryPrimitives.WriteUInt16LittleEndian(block, (ushort)(BitConverter.SingleToUInt32Bits(Gaussian(rng)) >> 16)); break;
                case "Q8_0": case "Q4_0": WriteHalf(block, 0, 0.01 + rng.NextDouble() * 0.05); break;
                case "Q4_K": case "Q5_K": WriteHalf(block, 0, 0.001 + rng.NextDouble() * 0.01); WriteHalf(block, 2, 0.001 + rng.NextDouble() * 0.01); break;
                case "Q6_K": WriteHalf(block, 208, 0.001 + rng.NextDouble() * 0.01); break;
            }
        }
        return data;
    }

    public static float Gaussian(Random rng) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));

    public static float[] Gaussian(Random rng, int n)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = Gaussian(rng);
        return v;
    }

    private static void WriteHalf(Span<byte> block, int offset, double value) =>
        BinaryPrimitives.WriteHalfLittleEndian(block.Slice(offset), (Half)value);

    private static double F16(ReadOnlySpan<byte> b, int offset) => (double)BinaryPrimitives.ReadHalfLittleEndian(b.Slice(offset));

    /// <summary>Row <paramref name="row"/> of a [rows, cols] matrix in <paramref name="format"/>, dequantised.</summary>
    public static double[] DequantizeRow(string format, byte[] data, int row, int cols)
    {
        int be = BlockElements(format), bb = BlockBytes(format);
        long rowBytes = (long)cols / be * bb;
        var y = new double[cols];
        for (int b = 0; b < cols / be; b++)
            DequantizeBlock(format, data.AsSpan((int)(row * rowBytes + (long)b * bb), bb), y.AsSpan(b * be, be));
        return y;
    }

    private static void DequantizeBlock(string format, ReadOnlySpan<byte> x, Span<double> y)
    {
        switch (format)
        {
            case "F32": y[0] = BinaryPrimitives.ReadSingleLittleEndian(x); break;
            case "F16": y[0] = F16(x, 0); break;
            case "BF16": y[0] = BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(x) << 16); break;
            case "Q8_0":
                for (int j = 0; j < 32; j++) y[j] = F16(x, 0) * (sbyte)x[2 + j];
                break;
            case "Q4_0":
                for (int j = 0; j < 16; j++)
                {
                    y[j] = F16(x, 0) * ((x[2 + j] & 0xF) - 8);
                    y[j + 16] = F16(x, 0) * ((x[2 + j] >> 4) - 8);
                }
                break;
            case "Q4_K": case "Q5_K":
            {
                bool five = format == "Q5_K";
                double d = F16(x, 0), dmin = F16(x, 2);
                var scales = x.Slice(4, 12);
                var qh = five ? x.Slice(16, 32) : default;
                var q = x.Slice(five ? 48 : 16, 128);
                int u1 = 1, u2 = 2, o = 0;
                for (int j = 0, s = 0; j < 256; j += 64, s += 2)
                {
                    ScaleMinK4(s, scales, out int sc1, out int m1);
                    ScaleMinK4(s + 1, scales, out int sc2, out int m2);
                    for (int l = 0; l < 32; l++)
                        y[o++] = d * sc1 * ((q[l] & 0xF) + (five && (qh[l] & u1) != 0 ? 16 : 0)) - dmin * m1;
                    for (int l = 0; l < 32; l++)
                        y[o++] = d * sc2 * ((q[l] >> 4) + (five && (qh[l] & u2) != 0 ? 16 : 0)) - dmin * m2;
                    q = q.Slice(32);
                    u1 <<= 2; u2 <<= 2;
                }
                break;
            }
            case "Q6_K":
            {
                double d = F16(x, 208);
                var ql = x.Slice(0, 128); var qh = x.Slice(128, 64); var sc = x.Slice(192, 16);
                for (int n = 0; n < 256; n += 128)
                {
                    for (int l = 0; l < 32; l++)
                    {
                        int s = l / 16;
                        int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                        int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                        int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                        int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                        y[n + l] = d * (sbyte)sc[s] * q1;
                        y[n + l + 32] = d * (sbyte)sc[s + 2] * q2;
                        y[n + l + 64] = d * (sbyte)sc[s + 4] * q3;
                        y[n + l + 96] = d * (sbyte)sc[s + 6] * q4;
                    }
                    ql = ql.Slice(64); qh = qh.Slice(32); sc = sc.Slice(8);
                }
                break;
            }
            default: throw new ArgumentException("unknown format " + format);
        }
    }

    /// <summary>ggml's get_scale_min_k4.</summary>
    private static void ScaleMinK4(int j, ReadOnlySpan<byte> q, out int d, out int m)
    {
        if (j < 4) { d = q[j] & 63; m = q[j + 4] & 63; }
        else
        {
            d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
}
