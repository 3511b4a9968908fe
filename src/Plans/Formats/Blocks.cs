using System.Runtime.InteropServices;

namespace Engine.Plans.Formats;

// Block layouts of the quantized weight formats, defined once (ggml-common.h). Sizes are checked by a test:
// Q4_0 18, Q8_0 34, Q4_K 144, Q5_K 176, Q6_K 210 bytes. All are 2-byte aligned in a GGUF data section.

/// <summary>Q4_0: 32 weights = d * (q - 8), q in 0..15; qs[j] holds weight j (low nibble) and j+16 (high nibble).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_0
{
    public const int Elements = 32;
    public const int Size = 18;
    public Half D;
    public fixed byte Qs[16];
}

/// <summary>Q8_0: 32 weights = d * q, q an int8.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_0
{
    public const int Elements = 32;
    public const int Size = 34;
    public Half D;
    public fixed sbyte Qs[32];
}

/// <summary>Q4_K: a super-block of 256 weights in 8 sub-blocks of 32; weight = d * sc * q - dmin * m with 6-bit
/// sc and m packed in 12 bytes (get_scale_min_k4) and 4-bit q.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_K
{
    public const int Elements = 256;
    public const int Size = 144;
    public Half D;
    public Half DMin;
    public fixed byte Scales[12];
    public fixed byte Qs[128];
}

/// <summary>Q5_K: as Q4_K with a fifth bit per weight in qh.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ5_K
{
    public const int Elements = 256;
    public const int Size = 176;
    public Half D;
    public Half DMin;
    public fixed byte Scales[12];
    public fixed byte Qh[32];
    public fixed byte Qs[128];
}

/// <summary>Q6_K: 256 weights in 16 sub-blocks of 16; weight = d * scale * (q - 32), q 6 bits split over ql
/// (low 4) and qh (high 2), scales int8.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ6_K
{
    public const int Elements = 256;
    public const int Size = 210;
    public fixed byte Ql[128];
    public fixed byte Qh[64];
    public fixed sbyte Scales[16];
    public Half D;
}
