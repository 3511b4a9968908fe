namespace Engine.Plans.Synth;

/// <summary>Llama 3.1 frequency scaling factors, one per rotary pair, as llama.cpp's converter writes them to
/// rope_freqs.weight (conversion/llama.py generate_extra_tensors, rope_type "llama3"): wavelengths shorter
/// than original_ctx/high keep factor 1, longer than original_ctx/low get <c>factor</c>, and those between
/// are interpolated smoothly. The converter computes in torch float32; this computes in double and rounds
/// once, which can differ from it in the last bit of the interpolated factors.</summary>
public static class RopeFactors
{
    public static float[] Llama3(int headDim, double ropeBase, double factor, double lowFreqFactor = 1, double highFreqFactor = 4, int originalContext = 8192)
    {
        double lowFreqWavelen = originalContext / lowFreqFactor;
        double highFreqWavelen = originalContext / highFreqFactor;
        var result = new float[headDim / 2];
        for (int i = 0; i < result.Length; i++)
        {
            double freq = 1.0 / Math.Pow(ropeBase, 2.0 * i / headDim);
            double wavelen = 2 * Math.PI / freq;
            if (wavelen < highFreqWavelen) result[i] = 1f;
            else if (wavelen > lowFreqWavelen) result[i] = (float)factor;
            else
            {
                double smooth = (originalContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                result[i] = (float)(1 / ((1 - smooth) / factor + smooth));
            }
        }
        return result;
    }
}
