using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Engine.Kernels.Formats;

/// <summary>Loads and integer→float conversions for the GEMV lane loops. Wide loads go through 16-byte structs
/// (<see cref="Quad{T}"/>), which ILGPU's PTX backend emits as single ld.global.v4 instructions; the same code runs
/// on ILGPU's CPU accelerator, so the conformance tests exercise the very decode logic the GPU runs. Callers
/// guarantee alignment (Gemv.LanePartial checks offsets; views are 16-byte aligned).</summary>
public static class Ld
{
    /// <summary>Four consecutive 32-bit values; loaded as one value so ILGPU's PTX backend can emit a single .v4 load
    /// (it vectorises loads of such structs when the view element type is 16 bytes).</summary>
    public struct Quad<T> where T : unmanaged
    {
        public T A, B, C, D;
    }

    /// <summary>x[i..i+3] in one 16-byte load; i must be a multiple of 4 and the view 16-byte aligned.</summary>
    public static void F4(ArrayView<float> x, long i, out float a, out float b, out float c, out float d)
    {
        var q = x.Cast<Quad<float>>()[i >> 2];
        a = q.A; b = q.B; c = q.C; d = q.D;
    }

    /// <summary>x[i..i+3] = (a, b, c, d) in one 16-byte store; i must be a multiple of 4 and the view 16-byte aligned.</summary>
    public static void StoreF4(ArrayView<float> x, long i, float a, float b, float c, float d) =>
        x.Cast<Quad<float>>()[i >> 2] = new Quad<float> { A = a, B = b, C = c, D = d };

    /// <summary>Four little-endian 32-bit words at byte <paramref name="offset"/> (a multiple of 16; the view 16-byte
    /// aligned) in one load.</summary>
    public static void U4(ArrayView<byte> w, long offset, out uint a, out uint b, out uint c, out uint d)
    {
        var q = w.Cast<Quad<uint>>()[offset >> 4];
        a = q.A; b = q.B; c = q.C; d = q.D;
    }

    /// <summary>A 32-bit word at a 4-aligned byte offset.</summary>
    public static uint U32(ArrayView<byte> w, long offset) => w.Cast<uint>()[offset >> 2];

    /// <summary>A 16-bit word at an even byte offset, zero-extended.</summary>
    public static int U16(ArrayView<byte> w, long offset) => w.Cast<ushort>()[offset >> 1];

    /// <summary>Two 16-bit loads at an even offset joined into one little-endian word (for the 2-aligned formats).</summary>
    public static uint U16x2(ArrayView<byte> w, long offset) =>
        (uint)U16(w, offset) | ((uint)U16(w, offset + 2) << 16);

    /// <summary>(float)q − bias for 0 ≤ q &lt; 2^23 without an int→float conversion (those issue at a quarter of the
    /// FP32 rate on sm_80/sm_90): 0x4B000000 | q is the float 2^23 + q, so one OR and one FADD. Exact.</summary>
    public static float Small(int q, float bias) => Interop.IntAsFloat((uint)(0x4B000000 | q)) - (8388608f + bias);

    /// <summary>The signed byte <paramref name="byteIndex"/> of <paramref name="word"/> as a float, by the same trick
    /// (flipping the sign bit makes it q + 128). Also avoids ILGPU 1.5.3's (sbyte)(byte) conversion, which it folds
    /// into an unsigned one on the PTX backend (cvt.rn.f32.u8).</summary>
    public static float SignedByte(uint word, int byteIndex) =>
        Interop.IntAsFloat(((word >> (8 * byteIndex)) & 0xFF) ^ 0x4B000080u) - 8388736f;

    /// <summary>Sign-extends the low byte of <paramref name="value"/> with shifts (see <see cref="SignedByte"/>).</summary>
    public static int SignExtend8(int value) => (value << 24) >> 24;

    /// <summary>Byte <paramref name="k"/> (0..3) of <paramref name="word"/> as a signed integer: one prmt.b32 on the GPU
    /// (the selector's upper three nibbles, 8 | k, replicate the byte's sign bit) where a shift pair takes two.</summary>
    public static int SignedByteInt(uint word, int k)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("prmt.b32 %0, %1, 0, %2;", out int r, word, k | ((8 | k) * 0x1110));
            return r;
        }
        return SignExtend8((int)(word >> (8 * k)));
    }

    public static float Half(uint bits) => (float)Interop.IntAsFloat((ushort)(bits & 0xFFFF));

    /// <summary>c + Σ of the four signed-byte products of <paramref name="a"/> and <paramref name="b"/>: PTX dp4a on the
    /// GPU (one instruction for four multiply-adds), the same sum in managed code on ILGPU's CPU accelerator.</summary>
    public static int Dp4a(uint a, uint b, int c)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("dp4a.s32.s32 %0, %1, %2, %3;", out int r, a, b, c);
            return r;
        }
        return c + SignExtend8((int)a) * SignExtend8((int)b) + SignExtend8((int)(a >> 8)) * SignExtend8((int)(b >> 8))
            + SignExtend8((int)(a >> 16)) * SignExtend8((int)(b >> 16)) + ((int)a >> 24) * ((int)b >> 24);
    }

    /// <summary>a·b rounded once, never contracted with a following add into an FMA (ptxas may contract a plain
    /// mul.f32), so a kernel rounds exactly as the CPU backend's separate multiply does.</summary>
    public static float MulRn(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a * b;
    }

    /// <summary><paramref name="v"/> (≥ 0, at most 65504) rounded to the nearest f16 value, ties to even, as a float:
    /// what <c>(float)(System.Half)v</c> gives. Integer arithmetic, so the GPU (where ILGPU's Half cast is
    /// cvt.rn.f16.f32) and ILGPU's CPU accelerator (whose managed Half cast rounds differently) agree bit for bit.</summary>
    public static float RoundToHalf(float v)
    {
        uint b = Interop.FloatAsInt(v);
        if (b >= 0x38800000u)   // 2^-14 and up: a normal f16, 10 mantissa bits kept
            return Interop.IntAsFloat((b + 0xFFFu + ((b >> 13) & 1)) & ~0x1FFFu);
        // Subnormal f16: multiples of 2^-24; v·2^24 < 1024 is exact, and the magic add rounds it to even.
        return (v * 16777216f + 12582912f - 12582912f) * 5.9604645e-8f;
    }

    // 32-bit offsets into a row's subview (the int8 lane loops): one IMAD.WIDE per load instead of the 64-bit
    // add/shift/multiply chain a long byte offset costs (the SASS of the first int8 GEMV spent ~6 instructions
    // on each load's address).

    /// <summary>Two consecutive 32-bit words at an 8-aligned byte offset, in one load.</summary>
    public static void U2(ArrayView<byte> w, int offset, out uint a, out uint b)
    {
        var q = w.Cast<Pair>()[offset >> 3];
        a = q.A; b = q.B;
    }

    /// <summary>Four little-endian 32-bit words at a 16-aligned byte offset, in one load.</summary>
    public static void U4(ArrayView<byte> w, int offset, out uint a, out uint b, out uint c, out uint d)
    {
        var q = w.Cast<Quad<uint>>()[offset >> 4];
        a = q.A; b = q.B; c = q.C; d = q.D;
    }

    /// <summary>A 32-bit word at a 4-aligned byte offset.</summary>
    public static uint U32(ArrayView<byte> w, int offset) => w.Cast<uint>()[offset >> 2];

    /// <summary>A 16-bit word at an even byte offset, zero-extended.</summary>
    public static int U16(ArrayView<byte> w, int offset) => w.Cast<ushort>()[offset >> 1];

    /// <summary>Two 16-bit loads at an even offset joined into one little-endian word.</summary>
    public static uint U16x2(ArrayView<byte> w, int offset) =>
        (uint)U16(w, offset) | ((uint)U16(w, offset + 2) << 16);

    /// <summary>A block of an f16 scale followed by 32 quant bytes (Q8_0) at byte <paramref name="off"/> of a 4-aligned
    /// view, where off is even: when off is 4-aligned the scale is the low half of the first aligned word and every
    /// quant word straddles two aligned words (joined by a funnel shift of 16); when off is 2 past, the scale is a
    /// 16-bit load and the quant words are aligned. Either way eight 32-bit loads and one 16-bit load, no branch.</summary>
    public static void Block2Aligned8(ArrayView<byte> w, int off, out uint d, out uint q0, out uint q1, out uint q2,
        out uint q3, out uint q4, out uint q5, out uint q6, out uint q7)
    {
        int b = off & ~3, odd = (off >> 1) & 1, shift = 16 - 16 * odd;
        var v = w.SubView(b + 4 * odd, 32);   // one 64-bit base; the words at constant offsets from it
        uint v0 = U32(v, 0), v1 = U32(v, 4), v2 = U32(v, 8), v3 = U32(v, 12);
        uint v4 = U32(v, 16), v5 = U32(v, 20), v6 = U32(v, 24), v7 = U32(v, 28);
        uint extra = (uint)U16(w, odd != 0 ? b + 2 : b + 32);   // the scale, or the last two quant bytes
        d = odd != 0 ? extra : v0 & 0xFFFF;
        q0 = Funnel(v0, v1, shift); q1 = Funnel(v1, v2, shift); q2 = Funnel(v2, v3, shift); q3 = Funnel(v3, v4, shift);
        q4 = Funnel(v4, v5, shift); q5 = Funnel(v5, v6, shift); q6 = Funnel(v6, v7, shift); q7 = Funnel(v7, extra, shift);
    }

    /// <summary><see cref="Block2Aligned8"/> for an f16 scale followed by 16 quant bytes (Q4_0).</summary>
    public static void Block2Aligned4(ArrayView<byte> w, int off, out uint d, out uint q0, out uint q1, out uint q2, out uint q3)
    {
        int b = off & ~3, odd = (off >> 1) & 1, shift = 16 - 16 * odd;
        var v = w.SubView(b + 4 * odd, 16);
        uint v0 = U32(v, 0), v1 = U32(v, 4), v2 = U32(v, 8), v3 = U32(v, 12);
        uint extra = (uint)U16(w, odd != 0 ? b + 2 : b + 16);
        d = odd != 0 ? extra : v0 & 0xFFFF;
        q0 = Funnel(v0, v1, shift); q1 = Funnel(v1, v2, shift); q2 = Funnel(v2, v3, shift); q3 = Funnel(v3, extra, shift);
    }

    /// <summary>The 32 bits of (hi:lo) starting at bit <paramref name="shift"/> (0 or 16).</summary>
    public static uint Funnel(uint lo, uint hi, int shift) => (uint)((((ulong)hi << 32) | lo) >> shift);

    public struct Pair
    {
        public uint A, B;
    }

    /// <summary>A block's (f32 scale, i32 sum) pair of quantized activations (<see cref="Quantize"/>), in one load.</summary>
    public static void ScaleSum(ArrayView<byte> xq, int offset, out float d, out int sum)
    {
        var q = xq.Cast<Pair>()[offset >> 3];
        d = Interop.IntAsFloat(q.A); sum = (int)q.B;
    }
}

/// <summary>The weight words of one int8 lane unit, loaded before its arithmetic (<see cref="IWeightFormat.QLaneLoad"/>);
/// a format uses as many as its unit has.</summary>
public struct QRaw
{
    public uint A, B, C, D, E, F, G, H, I;
}

/// <summary>The quantized activations one int8 lane unit multiplies (<see cref="IWeightFormat.QLaneX"/>): up to 32
/// signed bytes, up to four block scales and four integer terms whose meaning each format gives. Loaded once per
/// unit and shared by the rows a group computes.</summary>
public struct XLane
{
    public uint Q0, Q1, Q2, Q3, Q4, Q5, Q6, Q7;
    public float D0, D1, D2, D3;
    public int S0, S1, S2, S3;
}
