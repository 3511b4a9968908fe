using Engine.Plans.Gguf;

namespace Engine.Runtime.Tests.Cpu;

/// <summary>Float64 scalar references for the CPU kernels, written element by element from ggml's definitions
/// (ggml-quants.c dequantize_row_*, ggml.c ops), and random weight data of every format.</summary>
public static class Reference
{
    /// <summary>Random rows of a format: random codes, with the block scales set to sane finite values.</summary>
    public static byte[] RandomWeights(GgmlType type, int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
        var data = new byte[rows * rowBytes];
        rng.NextBytes(data);
        int blockBytes = GgmlTypeInfo.BlockBytes(type), blocks = data.Length / blockBytes;
        void SetHalf(int at, double v) => BitConverter.TryWriteBytes(data.AsSpan(at, 2), (Half)v);
        for (int b = 0; b < blocks; b++)
        {
            int o = b * blockBytes;
            switch (type)
            {
                case GgmlType.F32: BitConverter.TryWriteBytes(data.AsSpan(o, 4), (float)(rng.NextDouble() * 2 - 1)); break;
                case GgmlType.F16: SetHalf(o, rng.NextDouble() * 2 - 1); break;
                case GgmlType.BF16:
                    BitConverter.TryWriteBytes(data.AsSpan(o, 2), (ushort)(BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() * 2 - 1)) >> 16));
                    break;
                case GgmlType.Q4_0 or GgmlType.Q8_0: SetHalf(o, (rng.NextDouble() - 0.5) * 0.1); break;
                case GgmlType.Q4_K or GgmlType.Q5_K: SetHalf(o, rng.NextDouble() * 0.01); SetHalf(o + 2, rng.NextDouble() * 0.01); break;
                case GgmlType.Q6_K: SetHalf(o + 208, (rng.NextDouble() - 0.5) * 0.01); break;
            }
        }
        return data;
    }

    public static double[] Dequantize(GgmlType type, byte[] data, int rows, int cols)
    {
        var r = new double[(long)rows * cols];
        long rowBytes = GgmlTypeInfo.RowBytes(type, cols);
        for (int row = 0; row < rows; row++)
            for (int c = 0; c < cols; c++)
                r[(long)row * cols + c] = Weight(type, data.AsSpan((int)(row * rowBytes), (int)rowBytes), c);
        return r;
    }

    private static double H(ReadOnlySpan<byte> s, int at) => (double)BitConverter.ToHalf(s.Slice(at, 2));

    /// <summary>Weight <paramref name="c"/> of a row, straight from the block layout.</summary>
    private static double Weight(GgmlType type, ReadOnlySpan<byte> row, int c)
    {
        switch (type)
        {
            case GgmlType.F32: return BitConverter.ToSingle(row.Slice(4 * c, 4));
            case GgmlType.F16: return H(row, 2 * c);
            case GgmlType.BF16: return BitConverter.UInt32BitsToSingle((uint)BitConverter.ToUInt16(row.Slice(2 * c, 2)) << 16);
            case GgmlType.Q8_0:
            {
                var b = row.Slice(c / 32 * 34, 34);
                return H(b, 0) * (sbyte)b[2 + c % 32];
            }
            case GgmlType.Q4_0:
            {
                var b = row.Slice(c / 32 * 18, 18);
                int j = c % 32, q = j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4;
                return H(b, 0) * (q - 8);
            }
            case GgmlType.Q4_K or GgmlType.Q5_K:
            {
                bool five = type == GgmlType.Q5_K;
                var b = row.Slice(c / 256 * (five ? 176 : 144), five ? 176 : 144);
                var scales = b.Slice(4, 12);
                var qs = b.Slice(five ? 48 : 16, 128);
                int e = c % 256, g = e / 64, within = e % 64, sub = 2 * g + within / 32, l = within % 32;
                int q = within < 32 ? qs[32 * g + l] & 15 : qs[32 * g + l] >> 4;
                if (five && ((b[16 + l] >> sub) & 1) != 0) q += 16;
                int sc, m;
                if (sub < 4) { sc = scales[sub] & 63; m = scales[sub + 4] & 63; }
                else { sc = (scales[sub + 4] & 15) | ((scales[sub - 4] >> 6) << 4); m = (scales[sub + 4] >> 4) | ((scales[sub] >> 6) << 4); }
                return H(b, 0) * sc * q - H(b, 2) * m;
            }
            case GgmlType.Q6_K:
            {
                var b = row.Slice(c / 256 * 210, 210);
                int e = c % 256, half = e / 128, within = e % 128, i = within / 32, l = within % 32;
                byte ql = b[64 * half + l + 32 * (i % 2)];
                int low = i < 2 ? ql & 15 : ql >> 4;
                int high = (b[128 + 32 * half + l] >> (2 * i)) & 3;
                sbyte scale = (sbyte)b[192 + 8 * half + l / 16 + 2 * i];
                return H(b, 208) * scale * ((low | (high << 4)) - 32);
            }
            default: throw new NotSupportedException(type.ToString());
        }
    }

    /// <summary>Σ(a−e)² / Σe², test-backend-ops' error measure.</summary>
    public static double Nmse(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        double err = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++) { double d = actual[i] - expected[i]; err += d * d; norm += expected[i] * expected[i]; }
        return norm == 0 ? err : err / norm;
    }

    public static float[] RandomFloats(int n, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        var r = new float[n];
        for (int i = 0; i < n; i++) r[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return r;
    }

    /// <summary>The activations a Q8_0/Q4_0 matmul actually multiplies: each block of 32 quantized as ggml's
    /// quantize_row_q8_0 (d = max|x| / 127 stored as f16, q = x · (127 / max|x|) in f32, rounded to nearest even)
    /// and given back as d · q in float64.</summary>
    public static double[] Q8Activations(float[] x, int cols)
    {
        var r = new double[x.Length];
        for (int b0 = 0; b0 < x.Length; b0 += 32)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[b0 + j]));
            float id = amax != 0 ? 127f / amax : 0f;
            double d = (double)(Half)(amax / 127f);
            for (int j = 0; j < 32; j++) r[b0 + j] = d * Math.Round(x[b0 + j] * id, MidpointRounding.ToEven);
        }
        return r;
    }
}
