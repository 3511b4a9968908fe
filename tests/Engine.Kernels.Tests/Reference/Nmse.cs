namespace Engine.Kernels.Tests.Reference;

/// <summary>Normalised mean squared error, as llama.cpp's test-backend-ops scores a backend against the CPU:
/// Σ(a − b)² / Σb².</summary>
public static class Nmse
{
    public static double Of(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        if (actual.Length != expected.Length) throw new ArgumentException($"length {actual.Length} vs {expected.Length}");
        double err = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!double.IsFinite(actual[i])) return double.PositiveInfinity;
            double d = actual[i] - expected[i];
            err += d * d;
            norm += expected[i] * expected[i];
        }
        return norm == 0 ? err : err / norm;
    }

    public static void Check(string what, ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double threshold)
    {
        double nmse = Of(actual, expected);
        if (!(nmse <= threshold))
            throw new Xunit.Sdk.XunitException($"{what}: NMSE {nmse:E3} > {threshold:E1}");
    }
}
