using Engine.Kernels.Formats;
using ILGPU;

namespace Engine.Kernels;

/// <summary>y[t, c] = dequant(table[tokens[t], c]) (ggml_get_rows). One thread per output element; token ids are
/// trusted (the tokenizer and plan loader bound them by n_vocab).</summary>
public static class Embedding
{
    public static void Run<T>(Index1D index, ArrayView<byte> table, ArrayView<int> tokens, ArrayView<float> y, int cols, int nTokens)
        where T : struct, IWeightFormat
    {
        Pdl.Wait();
        var format = default(T);
        int t = index / cols, c = index - t * cols;
        int block = c / format.BlockElements;
        long offset = tokens[t] * Gemv.RowBytes<T>(cols) + (long)block * format.BlockBytes;
        y[index] = format.Dequantize(table, offset, c - block * format.BlockElements);
    }
}
