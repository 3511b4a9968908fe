namespace Engine.Runtime.Cpu;

/// <summary>gate = silu(gate) · up, silu(x) = x / (1 + e^-x) (ggml_swiglu_split / ggml_vec_swiglu_f32).</summary>
public static unsafe class SwiGlu
{
    public static void Apply(float* gate, float* up, long count)
    {
        for (long i = 0; i < count; i++)
        {
            float g = gate[i];
            gate[i] = g / (1.0f + MathF.Exp(-g)) * up[i];
        }
    }
}
