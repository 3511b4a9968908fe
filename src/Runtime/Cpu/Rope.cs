namespace Engine.Runtime.Cpu;

/// <summary>Rotary position embedding in ggml's normal mode (GGML_ROPE_TYPE_NORM, used by the llama
/// architecture): adjacent pairs (x[2i], x[2i+1]) of each head rotate by θ = pos · base^(-2i/n_dims), divided by
/// rope_freqs[i] when the model has that tensor (Llama 3.1 scaling). Dimensions past n_dims pass through.
/// The cos/sin table is computed once for the whole context, as ggml_rope_cache_init does per call: θ accumulated
/// by repeated multiplication with theta_scale in f32, so angles match ggml's bit for bit in the common case.</summary>
public sealed unsafe class Rope : IDisposable
{
    private readonly float* _cos;   // [max context, n_dims / 2]
    private readonly float* _sin;   // [max context, n_dims / 2]
    private readonly int _pairs;

    public int Dimensions { get; }

    /// <param name="freqScale">Linear position scaling (θ · freq_scale, as ggml's rope and the CUDA kernel); 1 for Llama.</param>
    public Rope(int maxContext, int dimensions, float freqBase, ReadOnlySpan<float> freqFactors, float freqScale = 1f)
    {
        Dimensions = dimensions;
        _pairs = dimensions / 2;
        _cos = NativeBuffers.Floats((long)maxContext * _pairs);
        _sin = NativeBuffers.Floats((long)maxContext * _pairs);
        float thetaScale = MathF.Pow(freqBase, -2.0f / dimensions);
        for (int p = 0; p < maxContext; p++)
        {
            float theta = p;
            for (int i = 0; i < _pairs; i++)
            {
                float ff = freqFactors.IsEmpty ? 1.0f : freqFactors[i];
                float t = theta * freqScale / ff;
                _cos[(long)p * _pairs + i] = MathF.Cos(t);
                _sin[(long)p * _pairs + i] = MathF.Sin(t);
                theta *= thetaScale;
            }
        }
    }

    /// <summary>Rotates x [tokens, heads · headDim] in place; token b sits at position startPos + b.</summary>
    public void Apply(float* x, int tokens, int heads, int headDim, int startPos)
    {
        for (int b = 0; b < tokens; b++)
        {
            float* c = _cos + (long)(startPos + b) * _pairs, s = _sin + (long)(startPos + b) * _pairs;
            for (int h = 0; h < heads; h++)
            {
                float* v = x + ((long)b * heads + h) * headDim;
                for (int i = 0; i < _pairs; i++)
                {
                    float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * c[i] - x1 * s[i];
                    v[2 * i + 1] = x0 * s[i] + x1 * c[i];
                }
            }
        }
    }

    public void Dispose()
    {
        NativeBuffers.Free(_cos);
        NativeBuffers.Free(_sin);
    }
}
