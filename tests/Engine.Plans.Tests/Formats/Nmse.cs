namespace Engine.Plans.Tests.Formats;

/// <summary>Normalised mean squared error Σ(a−b)²/Σb², as llama.cpp's test-backend-ops scores ops.</summary>
internal static class Nmse
{
    public static double Of(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double err = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            err += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return norm == 0 ? err : err / norm;
    }

    public static double Of(ReadOnlySpan<double> actual, ReadOnlySpan<float> expected)
    {
        double err = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = actual[i] - expected[i];
            err += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return norm == 0 ? err : err / norm;
    }
}
