namespace Engine.Runtime.Cpu;

/// <summary>x[b] = token_embd[tokens[b]] (ggml_get_rows), dequantized to f32.</summary>
public static unsafe class Embedding
{
    public static void Lookup(WeightMatrix table, ReadOnlySpan<int> tokens, float* x)
    {
        for (int b = 0; b < tokens.Length; b++)
            table.DequantizeRow(tokens[b], x + (long)b * table.Columns);
    }
}
