using ILGPU;

namespace Engine.Kernels;

/// <summary>The greedy choice fed back into the step's inputs: tokens[0] = argmax of the last token's logits row (ties
/// to the lowest id, as the host sampler's ArgMax), positions[0] = that token's position + 1. So a step whose inputs
/// are not copied in (the CUDA backend's greedy decode graph, src/Runtime/Cuda/CudaModel.cs) evaluates the token the
/// step before chose, at the next position, with no host round trip between tokens. Every other step copies its
/// tokens and positions in first, so the two words written here are only ever read by a greedy step.
/// One group of <see cref="Threads"/>: each thread keeps the best of its elements (16-byte loads, four in flight),
/// then a warp and a group reduction of (value, id) pairs. A NaN never wins a comparison (nor does it on the host,
/// but at id 0, where the host's scalar loop starts); a row of NaNs gives id 0.</summary>
public static class ArgMax
{
    public const int Threads = 1024;

    public static void Run(ArrayView<float> logits, ArrayView<int> tokens, ArrayView<int> positions, int nVocab, int nTokens)
    {
        var values = SharedMemory.Allocate<float>(Reduce.WarpLanes);
        var ids = SharedMemory.Allocate<int>(Reduce.WarpLanes);
        Pdl.Wait();
        long row = (long)(nTokens - 1) * nVocab;
        float best = float.NegativeInfinity;
        int id = int.MaxValue;
        int lane = Group.IdxX, lanes = Group.DimX;
        // Elements before the first 16-byte boundary of the row and after the last full quad go one at a time.
        int head = (int)((4 - (row & 3)) & 3);
        if (head > nVocab) head = nVocab;
        if (lane < head) Take(logits[row + lane], lane, ref best, ref id);
        int quads = (nVocab - head) >> 2;
        long q0 = row + head;
        int g = lane;
        for (; g + 3 * lanes < quads; g += 4 * lanes)
        {
            Formats.Ld.F4(logits, q0 + 4L * g, out float a0, out float a1, out float a2, out float a3);
            Formats.Ld.F4(logits, q0 + 4L * (g + lanes), out float b0, out float b1, out float b2, out float b3);
            Formats.Ld.F4(logits, q0 + 4L * (g + 2 * lanes), out float c0, out float c1, out float c2, out float c3);
            Formats.Ld.F4(logits, q0 + 4L * (g + 3 * lanes), out float d0, out float d1, out float d2, out float d3);
            Quad(a0, a1, a2, a3, head + 4 * g, ref best, ref id);
            Quad(b0, b1, b2, b3, head + 4 * (g + lanes), ref best, ref id);
            Quad(c0, c1, c2, c3, head + 4 * (g + 2 * lanes), ref best, ref id);
            Quad(d0, d1, d2, d3, head + 4 * (g + 3 * lanes), ref best, ref id);
        }
        for (; g < quads; g += lanes)
        {
            Formats.Ld.F4(logits, q0 + 4L * g, out float a0, out float a1, out float a2, out float a3);
            Quad(a0, a1, a2, a3, head + 4 * g, ref best, ref id);
        }
        int tail = head + 4 * quads + lane;
        if (tail < nVocab) Take(logits[row + tail], tail, ref best, ref id);

        WarpBest(ref best, ref id);
        if (Warp.LaneIdx == 0) { values[Reduce.WarpIndex] = best; ids[Reduce.WarpIndex] = id; }
        Group.Barrier();
        if (Reduce.WarpIndex == 0)
        {
            int warps = lanes / Reduce.WarpLanes;
            best = Warp.LaneIdx < warps ? values[Warp.LaneIdx] : float.NegativeInfinity;
            id = Warp.LaneIdx < warps ? ids[Warp.LaneIdx] : int.MaxValue;
            WarpBest(ref best, ref id);
            if (lane == 0)
            {
                tokens[0] = id == int.MaxValue ? 0 : id;
                positions[0] = positions[nTokens - 1] + 1;
            }
        }
    }

    /// <summary>Four consecutive elements from id <paramref name="first"/>, in order.</summary>
    private static void Quad(float a, float b, float c, float d, int first, ref float best, ref int id)
    {
        Take(a, first, ref best, ref id);
        Take(b, first + 1, ref best, ref id);
        Take(c, first + 2, ref best, ref id);
        Take(d, first + 3, ref best, ref id);
    }

    /// <summary>(v, i) replaces (best, id) when larger, or equal with a lower id (-∞ is taken over no element yet:
    /// id is int.MaxValue then); a NaN is never taken.</summary>
    private static void Take(float v, int i, ref float best, ref int id)
    {
        if (v > best || (v == best && i < id)) { best = v; id = i; }
    }

    /// <summary>The best (value, id) of the warp in every lane.</summary>
    private static void WarpBest(ref float best, ref int id)
    {
        for (int offset = 16; offset > 0; offset >>= 1)
        {
            float v = Warp.ShuffleXor(best, offset);
            int i = Warp.ShuffleXor(id, offset);
            Take(v, i, ref best, ref id);
        }
    }
}
