namespace Engine.Runtime.Cpu;

/// <summary>y = silu(gate) · up, silu(x) = x / (1 + e^-x) (ggml_swiglu_split / ggml_vec_swiglu_f32); y may be gate.</summary>
public static unsafe class SwiGlu
{
    public static void Apply(float* gate, float* up, float* y, long count)
    {
        for (long i = 0; i < count; i++)
        {
            float g = gate[i];
            y[i] = g / (1.0f + MathF.Exp(-g)) * up[i];
        }
    }
}
