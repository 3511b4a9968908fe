namespace Engine.Plans.Formats;

/// <summary>The scale searches of ggml's reference K-quantizers (ggml-quants.c: nearest_int, make_qx_quants,
/// make_qkx2_quants). Every float operation is kept in ggml's order and precision so the blocks written
/// from them are byte-identical to llama.cpp's quantize_row_*_ref.</summary>
internal static class QuantSearch
{
    /// <summary>Round to nearest, ties to even, for |f| ≤ 4194303: adding 1.5·2^23 leaves the rounded integer
    /// in the mantissa (ggml's nearest_int).</summary>
    public static int NearestInt(float f)
    {
        float v = f + 12582912f;
        int i = BitConverter.SingleToInt32Bits(v);
        return (i & 0x007FFFFF) - 0x00400000;
    }

    /// <summary>Below this a group counts as all zero (ggml-quants.c GROUP_MAX_EPS).</summary>
    public const float GroupMaxEps = 1e-15f;

    /// <summary>make_qx_quants with rmse_type 1 and no importance weights (the q6_K reference path): symmetric
    /// levels L in [0, 2·nmax), value ≈ scale·(L − nmax), scale searched over 19 candidates around −nmax/max
    /// minimising Σ x²·(x − scale·l)². Returns the scale; writes L.</summary>
    public static float MakeQxQuants(int nmax, ReadOnlySpan<float> x, Span<sbyte> levels)
    {
        int n = x.Length;
        float max = 0, amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            levels[..n].Clear();
            return 0f;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
            levels[i] = (sbyte)(l + nmax);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0f;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
                float w = x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (int i = 0; i < n; i++)
                    levels[i] = (sbyte)(nmax + Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    /// <summary>make_qkx2_quants: asymmetric levels L in [0, nmax], value ≈ scale·L − theMin, searching
    /// nstep+1 scales (rmin + rdelta·is + nmax)/(max − min) and refitting scale and min by weighted least
    /// squares each time; keeps the candidate of least weighted squared error. Returns the scale; theMin ≥ 0
    /// is the amount subtracted.</summary>
    public static float MakeQkx2Quants(int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights,
        Span<byte> levels, out float theMin, Span<byte> scratch, float rmin, float rdelta, int nstep)
    {
        int n = x.Length;
        float min = x[0], max = x[0];
        float sumW = weights[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            levels[..n].Clear();
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
            levels[i] = (byte)l;
            float diff = scale * levels[i] + min - x[i];
            bestError += weights[i] * (diff * diff);
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXl = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
                scratch[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXl += w * l * x[i];
            }
            float det = sumW * sumL2 - sumL * sumL;
            if (det > 0)
            {
                float thisScale = (sumW * sumXl - sumX * sumL) / det;
                float thisMin = (sumL2 * sumX - sumL * sumXl) / det;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXl / sumL2;
                }
                float curError = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * scratch[i] + thisMin - x[i];
                    curError += weights[i] * (diff * diff);
                }
                if (curError < bestError)
                {
                    scratch[..n].CopyTo(levels);
                    bestError = curError;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>The 6-bit scale and min of sub-block j from the 12 packed bytes of a Q4_K/Q5_K block
    /// (ggml-quants.c get_scale_min_k4): j &lt; 4 in the low 6 bits of bytes j and j+4; j ≥ 4 split over
    /// the nibbles of byte j+4 and the top 2 bits of bytes j−4 and j.</summary>
    public static void GetScaleMinK4(int j, ReadOnlySpan<byte> q, out byte scale, out byte min)
    {
        if (j < 4)
        {
            scale = (byte)(q[j] & 63);
            min = (byte)(q[j + 4] & 63);
        }
        else
        {
            scale = (byte)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            min = (byte)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        }
    }

    /// <summary>Packs eight 6-bit (scale, min) pairs into 12 bytes, the inverse of <see cref="GetScaleMinK4"/>.</summary>
    public static void PackScaleMinK4(ReadOnlySpan<byte> scales, ReadOnlySpan<byte> mins, Span<byte> q)
    {
        for (int j = 0; j < 8; j++)
        {
            byte ls = scales[j], lm = mins[j];
            if (j < 4)
            {
                q[j] = ls;
                q[j + 4] = lm;
            }
            else
            {
                q[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                q[j - 4] |= (byte)((ls >> 4) << 6);
                q[j] |= (byte)((lm >> 4) << 6);
            }
        }
    }
}
