using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>Helpers shared by the K-quant formats (ggml-quants.c).</summary>
public static class KQuants
{
    /// <summary>get_scale_min_k4: 6-bit scale and min of sub-block <paramref name="j"/> (0..7) packed in the 12
    /// bytes at <paramref name="scales"/>.</summary>
    public static void ScaleMin(ArrayView<byte> data, long scales, int j, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = data[scales + j] & 63;
            min = data[scales + j + 4] & 63;
        }
        else
        {
            scale = (data[scales + j + 4] & 0xF) | ((data[scales + j - 4] >> 6) << 4);
            min = (data[scales + j + 4] >> 4) | ((data[scales + j] >> 6) << 4);
        }
    }

    /// <summary>get_scale_min_k4 on the 12 scale bytes already loaded as three little-endian words.</summary>
    public static void ScaleMin(uint s0, uint s1, uint s2, int j, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = Byte(s0, s1, s2, j) & 63;
            min = Byte(s0, s1, s2, j + 4) & 63;
        }
        else
        {
            int high = Byte(s0, s1, s2, j + 4);
            scale = (high & 0xF) | ((Byte(s0, s1, s2, j - 4) >> 6) << 4);
            min = (high >> 4) | ((Byte(s0, s1, s2, j) >> 6) << 4);
        }
    }

    private static int Byte(uint s0, uint s1, uint s2, int k)
    {
        uint word = k < 4 ? s0 : k < 8 ? s1 : s2;
        return (int)((word >> (8 * (k & 3))) & 0xFF);
    }
}
