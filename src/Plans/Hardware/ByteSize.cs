using System.Globalization;

namespace Engine.Plans.Hardware;

/// <summary>Sizes as people write them on a command line or in a profile: "24G", "512MiB", "1.5T", "4096".
/// K/M/G/T are binary (1024-based) with or without "i"/"B", as nvidia-smi and free -g count.</summary>
public static class ByteSize
{
    public static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        string s = text.Trim();
        if (s.EndsWith("iB", StringComparison.OrdinalIgnoreCase)) s = s[..^2];
        else if (s.EndsWith('B') || s.EndsWith('b')) s = s[..^1];
        long unit = 1;
        if (s.Length > 0)
        {
            switch (char.ToUpperInvariant(s[^1]))
            {
                case 'K': unit = 1L << 10; s = s[..^1]; break;
                case 'M': unit = 1L << 20; s = s[..^1]; break;
                case 'G': unit = 1L << 30; s = s[..^1]; break;
                case 'T': unit = 1L << 40; s = s[..^1]; break;
            }
        }
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || v < 0 || double.IsNaN(v)) return false;
        double b = v * unit;
        if (b > long.MaxValue / 2) return false;
        bytes = (long)Math.Round(b);
        return true;
    }

    /// <summary>Fixed, culture-free formatting for explain output: "24.00 GiB", "512.0 MiB", "4.0 KiB", "12 B".</summary>
    public static string Format(long bytes)
    {
        double b = bytes;
        if (Math.Abs(b) >= 1L << 30) return (b / (1L << 30)).ToString("0.00", CultureInfo.InvariantCulture) + " GiB";
        if (Math.Abs(b) >= 1L << 20) return (b / (1L << 20)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB";
        if (Math.Abs(b) >= 1L << 10) return (b / (1L << 10)).ToString("0.0", CultureInfo.InvariantCulture) + " KiB";
        return bytes.ToString(CultureInfo.InvariantCulture) + " B";
    }

    public static string Rate(double bytesPerSecond) =>
        (bytesPerSecond / 1e9).ToString("0.0", CultureInfo.InvariantCulture) + " GB/s";
}
