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
}
