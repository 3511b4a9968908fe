using ILGPU;

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

    public static float Half(uint bits) => (float)Interop.IntAsFloat((ushort)(bits & 0xFFFF));
}
