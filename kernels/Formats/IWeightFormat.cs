using ILGPU;

namespace Engine.Kernels.Formats;

/// <summary>A GGUF weight format as the kernels see it: rows are sequences of blocks of <see cref="BlockElements"/>
/// weights in <see cref="BlockBytes"/> bytes (ggml-common.h layouts, also Engine.Plans.Formats.Blocks). Kernels are
/// generic over an implementing struct and call it through <c>default(T)</c>, so ILGPU specialises each format.
/// Data is read from an <see cref="ArrayView{T}"/> of bytes at a block's byte offset; GGUF blocks are only 2-byte
/// aligned, so reads are bytewise (a planner-side repack could enable wide loads).</summary>
public interface IWeightFormat
{
    int BlockElements { get; }

    int BlockBytes { get; }

    /// <summary>A block splits into this many work units (each a few contiguous bytes); a warp's lanes take
    /// consecutive units, so a warp reads consecutive bytes (coalesced).</summary>
    int UnitsPerBlock { get; }

    /// <summary>Weight <paramref name="index"/> (0 ≤ index &lt; BlockElements) of the block at <paramref name="block"/>.</summary>
    float Dequantize(ArrayView<byte> data, long block, int index);

    /// <summary>Σ w·x over the weights of unit <paramref name="unit"/> of the block at <paramref name="block"/>;
    /// <paramref name="xBlock"/> is the index in <paramref name="x"/> of the block's first weight.</summary>
    float DotUnit(ArrayView<byte> data, long block, int unit, ArrayView<float> x, long xBlock);

    /// <summary>Weights one lane covers per call of <see cref="LaneDot"/> (the GEMV fast path). Lane unit g covers
    /// x[LaneElements·g …] (for the K-quants: x[256b + 4l …] and x[256b + 128 + 4l …], b = g/32, l = g%32), so
    /// consecutive lanes read consecutive 16-byte pieces of x and of the weights.</summary>
    int LaneElements { get; }

    /// <summary>Byte alignment a weight row needs for <see cref="LaneDot"/> (16 for the .v4 loads, 2 for the
    /// 2-aligned GGUF blocks). Rows that are not aligned take the <see cref="DotUnit"/> path.</summary>
    int LaneAlignment { get; }

    /// <summary>The activations lane unit <paramref name="g"/> multiplies (a: the first 4, c: the next 4 when
    /// <see cref="LaneElements"/> is 8), loaded once and shared by the rows a warp computes.</summary>
    void LaneX(ArrayView<float> x, long xRow, int g, out Ld.Quad<float> a, out Ld.Quad<float> c);

    /// <summary>Σ w·x over lane unit <paramref name="g"/> of the row at byte <paramref name="row"/>, given the unit's
    /// activations from <see cref="LaneX"/>.</summary>
    float LaneDot(ArrayView<byte> data, long row, int g, Ld.Quad<float> a, Ld.Quad<float> c);

    /// <summary>True for the quantized formats: the GEMV multiplies their integer weights with the 8-bit activations
    /// of <see cref="Quantize"/> by dp4a (<see cref="QLaneX"/>, <see cref="QLaneDot"/>), as llama.cpp's mmvq does; the
    /// float formats (false) read f32 activations through <see cref="LaneX"/>/<see cref="LaneDot"/> and never reach
    /// the int8 members; so does a quantized format wrapped in <see cref="F32Act{T}"/> (f32 activations).</summary>
    bool Int8Activations { get; }

    /// <summary>Weights one int8 lane unit covers; a row has cols / QLaneElements units, consecutive units are
    /// consecutive bytes of the row (coalesced).</summary>
    int QLaneElements { get; }

    /// <summary>N (4 or 8) when <see cref="QLaneDot"/> wants N-byte aligned row views (its rows' blocks are only 2-byte
    /// aligned, and it reads them by aligned 32- or 64-bit loads given the lead: the row's offset from the view's
    /// N-aligned start); 0 keeps the view at the row's first byte (lead 0), so the format's offsets need no runtime
    /// lead.</summary>
    int QLaneLeadAlignment { get; }

    /// <summary>For a format with a <see cref="QLaneLeadAlignment"/>: whether the four rows of a group are read through
    /// one view, from the aligned byte at or before the first row, each row at its lead from there (Gemv.RowViews: one
    /// 64-bit base and four 32-bit leads, where a view a row held four bases that ptxas recomputed in every iteration of
    /// the lane loop at the register caps). Measured (8B tg128, H200, docs/benchmarks.md "Session 26"): Q6_K +6.9 %
    /// (Q4_K_M +1.6 % by its Q6_K matrices), Q4_0 +0.5 %; Q8_0 −0.95 %, so false for it.</summary>
    bool QLaneOneView { get; }

    /// <summary>True for a unit light enough that more loads in flight a thread pay for their registers: the GEMV takes
    /// two lane units an iteration (measured per format: Q4_0 gains 10-15 %, Q8_0 and Q4_K lose 7-10 % to the registers
    /// it costs, docs/benchmarks.md; Q4_K on an H200, session 21, its gemv and gemv_add at a cap of 80: −4.4 %).</summary>
    bool QLanePairs { get; }

    /// <summary>True for a <see cref="QLaneEarly"/> format whose loaded unit (<see cref="QLaneLoad"/>) is at most six
    /// words: gate/up with one unit a lane then loads gate's and up's four rows together, eight rows' words in flight
    /// where the lane loop waits for gate's before it loads up's (<see cref="GemvSwiGlu"/>). Measured (8B tg128, H200,
    /// docs/benchmarks.md "Session 20" and "Session 21"): Q4_0 +3.8 % (five words), Q4_K +2.8 % (five: its header one
    /// word a lane, 72 registers, no spill), Q5_K +1.3 % over its early loads alone (six); Q8_0's nine words lost 3–4 %
    /// at caps of 72–96, and Q4_K's eight (the whole header a lane) spilled at 72 and lost 0.3 %.</summary>
    bool QLaneTogether { get; }

    /// <summary>The quantized activations int8 lane unit <paramref name="g"/> multiplies: <paramref name="xq"/> is the
    /// token's row (a subview), <paramref name="pairs"/> the offset of its (d, Σq) pairs.</summary>
    void QLaneX(ArrayView<byte> xq, int pairs, int g, out XLane x);

    /// <summary>Σ w·x over int8 lane unit <paramref name="g"/> of one weight row (a subview). With
    /// <see cref="QLaneLeadAlignment"/> N the view is N-byte aligned and the row's first block starts
    /// <paramref name="lead"/> (an even number) bytes into it (rows of 2-byte aligned blocks, e.g. an odd number of
    /// 34-byte Q8_0 blocks, alternate; with <see cref="QLaneOneView"/> a group's four rows share one view,
    /// Gemv.RowViews), so the format can use aligned loads; otherwise lead is 0.</summary>
    float QLaneDot(ArrayView<byte> row, int lead, int g, XLane x);

    /// <summary>True when the GEMV's lane loop loads all four rows' units (<see cref="QLaneLoad"/>) before any row's
    /// arithmetic (<see cref="QLaneMath"/>), so ptxas issues the loads together even at the 64-register cap (it did not
    /// hoist them across the rows' math by itself); false when it takes the rows one <see cref="QLaneDot"/> after
    /// another (measured per format, docs/benchmarks.md).</summary>
    bool QLaneSplit { get; }

    /// <summary>True when <see cref="QLaneLoad"/> loads every word of the unit and <see cref="QLaneMath"/> reads nothing
    /// of the row: a GEMV whose rows are one unit a thread may then load them before the PDL wait
    /// (<see cref="Gemv.OneUnitALane{T}"/>), and one with longer rows its first unit where the format also splits
    /// (<see cref="Gemv.FirstUnitEarly{T}"/>).</summary>
    bool QLaneEarly { get; }

    /// <summary>The words of int8 lane unit <paramref name="g"/> of a row that <see cref="QLaneMath"/> multiplies,
    /// loaded ahead of it (<see cref="QLaneSplit"/>, <see cref="QLaneEarly"/>): all of them where QLaneEarly; a format
    /// that is neither leaves <paramref name="raw"/> empty and loads in QLaneMath. For every format
    /// QLaneDot(row, lead, g, x) = QLaneMath(row, lead, g, QLaneLoad(row, lead, g), x) where the lanes of a warp take
    /// consecutive units together (g mod 32 = the lane, every lane of the warp active): Q4_K's and Q5_K's QLaneMath
    /// gather their block header (and Q5_K's fifth bits) by shuffles from the unit's eight lanes, which is why they do
    /// not split.</summary>
    void QLaneLoad(ArrayView<byte> row, int lead, int g, out QRaw raw);

    /// <summary>Σ w·x over lane unit <paramref name="g"/> from the words <see cref="QLaneLoad"/> loaded.</summary>
    float QLaneMath(ArrayView<byte> row, int lead, int g, QRaw raw, XLane x);
}

/// <summary>Little-endian loads from byte views (GGUF is little-endian; so are both CUDA and x64).</summary>
public static class Bytes
{
    public static int U16(ArrayView<byte> data, long offset) => data[offset] | (data[offset + 1] << 8);

    public static float F16(ArrayView<byte> data, long offset) => (float)Interop.IntAsFloat((ushort)U16(data, offset));

    /// <summary>bfloat16 is the high half of a float32 (ggml_bf16_to_fp32).</summary>
    public static float BF16(ArrayView<byte> data, long offset) => Interop.IntAsFloat((uint)U16(data, offset) << 16);

    /// <summary>A 16-bit load; <paramref name="offset"/> must be even (every GGUF block field is).</summary>
    public static int U16Aligned(ArrayView<byte> data, long offset) => data.Cast<ushort>()[offset >> 1];

    /// <summary>A 32-bit load; <paramref name="offset"/> must be a multiple of 4 (Q4_K/Q5_K blocks are 16-byte
    /// multiples, so their fields at 4-aligned offsets are, given a 16-byte-aligned tensor: GGUF aligns tensor data
    /// to 32 bytes and cuMemAlloc to 256).</summary>
    public static uint U32Aligned(ArrayView<byte> data, long offset) => data.Cast<uint>()[offset >> 2];

    public static float F16Bits(uint bits) => (float)Interop.IntAsFloat((ushort)bits);

    public static float F32(ArrayView<byte> data, long offset) =>
        Interop.IntAsFloat((uint)(data[offset] | (data[offset + 1] << 8) | (data[offset + 2] << 16) | (data[offset + 3] << 24)));
}
