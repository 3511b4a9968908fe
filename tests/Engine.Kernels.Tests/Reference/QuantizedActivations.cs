namespace Engine.Kernels.Tests.Reference;

/// <summary>The 8-bit activation quantization of the int8 GEMV, written plainly (ggml quantize_row_q8_0 with
/// round-to-nearest-even, as the CPU backend's QuantizedDot.QuantizeRow): per block of 32, d = f16(max|x| / 127),
/// q = round(x · 127 / max|x|), and Σq. Rows use the kernel's layout (docs/kernels.md "Quantized activations").</summary>
public static class QuantizedActivations
{
    public static byte[] Quantize(float[] x, int cols)
    {
        int tokens = x.Length / cols, blocks = Engine.Kernels.Quantize.Blocks(cols);
        long rowBytes = Engine.Kernels.Quantize.RowBytes(cols), pairs = Engine.Kernels.Quantize.PairsOffset(cols);
        var y = new byte[rowBytes * tokens];
        for (int t = 0; t < tokens; t++)
            for (int b = 0; b < blocks; b++)
            {
                float amax = 0;
                for (int i = 32 * b; i < Math.Min(cols, 32 * b + 32); i++) amax = MathF.Max(amax, MathF.Abs(x[t * cols + i]));
                float id = amax != 0 ? 127f / amax : 0f;
                int sum = 0;
                for (int i = 32 * b; i < 32 * b + 32; i++)
                {
                    int q = i < cols ? (int)MathF.Round(x[t * cols + i] * id, MidpointRounding.ToEven) : 0;
                    y[t * rowBytes + i] = (byte)(sbyte)q;
                    sum += q;
                }
                long p = t * rowBytes + pairs + 8L * b;
                BitConverter.TryWriteBytes(y.AsSpan((int)p, 4), (float)(Half)(amax / 127f));
                BitConverter.TryWriteBytes(y.AsSpan((int)p + 4, 4), sum);
            }
        return y;
    }

    /// <summary>d·q for every activation, as doubles (the values the int8 kernels multiply).</summary>
    public static double[] Dequantize(float[] x, int cols)
    {
        byte[] q = Quantize(x, cols);
        long rowBytes = Engine.Kernels.Quantize.RowBytes(cols), pairs = Engine.Kernels.Quantize.PairsOffset(cols);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int t = i / cols, c = i % cols;
            float d = BitConverter.ToSingle(q, (int)(t * rowBytes + pairs + 8L * (c / 32)));
            y[i] = d * (double)(sbyte)q[t * rowBytes + c];
        }
        return y;
    }
}
