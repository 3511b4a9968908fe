namespace Engine.Runtime.Cpu;

/// <summary>y = x / sqrt(mean(x²) + eps) · w per token (ggml_rms_norm followed by ggml_mul with the norm weight;
/// ggml-cpu sums the squares in double, ggml_float).</summary>
public static unsafe class RmsNorm
{
    public static void Apply(float* x, float* weight, float* y, int tokens, int dim, float eps)
    {
        for (int b = 0; b < tokens; b++)
        {
            float* xb = x + (long)b * dim, yb = y + (long)b * dim;
            double sum = 0;
            for (int i = 0; i < dim; i++) sum += (double)xb[i] * xb[i];
            float scale = 1.0f / MathF.Sqrt((float)(sum / dim) + eps);
            for (int i = 0; i < dim; i++) yb[i] = xb[i] * scale * weight[i];
        }
    }
}
