using Engine.Kernels.Formats;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Acc = Engine.Kernels.Gemm.Acc;
using Half = ILGPU.Half;

namespace Engine.Kernels;

/// <summary>Attention of a prompt step on the tensor cores (the batch kernel of the attention op, attention_quant_tiled
/// in llama.graph: the CUDA runtime runs it for steps of many tokens, as the GEMM for the matmuls), flash-attention
/// style (Dao 2023): a group of <see cref="Warps"/> warps takes one query head and <see cref="TokensPerGroup"/>
/// consecutive tokens, a warp 16 of them. The group walks the head's cached positions in chunks of
/// <see cref="ChunkPositions"/>: it copies the chunk's K rows (row-major) and V rows (transposed: a dim's positions
/// consecutive) into shared memory as f16, and each warp computes its 16 × 64 scores with
/// <c>mma.sync.m16n8k16</c> (f16 inputs, f32 accumulators; q rounded to f16 once, in registers), keeps an online
/// softmax per token (Milakov &amp; Gimelshein 2018; positions past a token's own are masked, so the step is causal),
/// and multiplies the weights (rounded to f16, straight from the score accumulators: an m16n8 accumulator pair is an A
/// fragment's k-half) with V into 16 × head_dim f32 accumulators. The existing attention reads each K and V row from L2
/// once per token on the CUDA cores; here a row comes into shared memory once per 64 tokens. The output goes through
/// shared memory to warps whose 32 lanes hold 32 consecutive dims of one token, which store it and its 8-bit blocks
/// (<see cref="Quantize.Store1"/>), as <see cref="Attention"/> does. The f16 rounding of q and of the weights is the
/// precision of llama.cpp's attention on the GPU (its flash attention and its cuBLAS path take q as f16 too); the
/// output's NMSE against float64 is 2e-8 to 9e-8 in gpu-selftest (the f32 kernel's 1e-14), and the 8-bit output that
/// follows rounds far more. q split into two f16 parts (22 bits, two mma a k-step) halved that NMSE, left a random-weight
/// 8B's logits as far from the CPU backend's (3.6e-4 against 4.0e-4, where any perturbation of those files shows as
/// ~3e-4) and cost 0.3–0.8 % of prompt speed: not kept (docs/benchmarks.md "Session 18"). Needs head_dim a
/// multiple of 32, at most <see cref="MaxHeadDim"/> (the planner gives the op no batch kernel otherwise). Same
/// arguments as attention_quant (attn_part and attn_sync are not used: there are no ranges to merge). On ILGPU's CPU
/// accelerator the mma is computed from the lanes' fragments by shuffles (<see cref="Mma"/>).</summary>
public static class AttentionQuantTiled
{
    public const int Warps = 4;
    public const int TokensPerWarp = 16;
    public const int TokensPerGroup = Warps * TokensPerWarp;
    public const int ChunkPositions = 64;
    public const int MaxHeadDim = 128;

    /// <summary>Words a K row takes in shared memory: 64 (128 f16 dims) and 4 of padding, so the B fragment loads of a
    /// warp (positions g = 0..7 × words t = 0..3) fall in 32 different banks: (68·g + t) mod 32 = 4g + t.</summary>
    private const int KStride = 68;

    /// <summary>Words a V dim takes (transposed: 64 f16 positions, 32 words, and 4 of padding; same banks).</summary>
    private const int VStride = 36;

    /// <summary>Floats an output row takes when the warps hand their tiles to the storing lanes (128 and 4 of padding:
    /// lane (g, t)'s two floats at 132·g + 2t land in distinct banks).</summary>
    private const int OStride = 132;

    private const int KWords = ChunkPositions * KStride, VWords = MaxHeadDim * VStride;

    public static void Run(ArrayView<float> q, ArrayView<Half> kCache, ArrayView<Half> vCache, ArrayView<int> positions,
        ArrayView<float> y, ArrayView<byte> yq, ArrayView<float> part, ArrayView<int> sync, int nHead, int nHeadKv, int headDim,
        int nTokens, float scale)
    {
        var smem = SharedMemory.Allocate<uint>(KWords + VWords);
        var warpMax = SharedMemory.Allocate<int>(Warps);
        var ks = smem.SubView(0, KWords);
        var vs = smem.SubView(KWords, VWords);
        Pdl.Wait();

        int head = Grid.IdxX, kvHead = head / (nHead / nHeadKv);
        int warp = Reduce.WarpIndex, lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3, tid = Group.IdxX;
        int tok0 = Grid.IdxY * TokensPerGroup + TokensPerWarp * warp;
        int ra = tok0 + g, rb = ra + 8;   // the lane's two tokens (fragment rows g and g + 8)
        int posA = ra < nTokens ? positions[ra] : -1, posB = rb < nTokens ? positions[rb] : -1;
        int kvDim = nHeadKv * headDim, kSteps = headDim / 16, dimTiles = headDim / 8;

        // The chunks the group walks: up to the last position any of its tokens attends to.
        int mine = IntMax(IntrinsicMath.Max(posA, posB));
        if (lane == 0) warpMax[warp] = mine;
        Group.Barrier();
        int count = IntrinsicMath.Max(IntrinsicMath.Max(warpMax[0], warpMax[1]), IntrinsicMath.Max(warpMax[2], warpMax[3])) + 1;

        var qf = LoadQ(q, ra, rb, nTokens, nHead, head, headDim, t, kSteps);
        var o = default(OTile);
        float mA = -1e30f, mB = -1e30f, lA = 0f, lB = 0f;
        long kvBase = (long)kvHead * headDim;
        // 16-byte loads: a layer's cache is 16-byte aligned and every row's piece is (kv_dim and head_dim multiples of 32).
        var kBytes = kCache.Cast<byte>().AsAligned(16);
        var vBytes = vCache.Cast<byte>().AsAligned(16);

        for (int c0 = 0; c0 < count; c0 += ChunkPositions)
        {
            Group.Barrier();   // the previous chunk's fragments are read
            // K and V of positions c0 .. c0 + 63 into shared memory; rows past count are zero.
            // K: a thread 8 dims (one 16-byte load) of 8 rows, row-major (a warp: 2 rows × 16 pieces, 2-way banks).
            for (int i = 0; i < ChunkPositions * MaxHeadDim / 8 / (Warps * 32); i++)
            {
                int lin = tid + Warps * 32 * i, row = lin >> 4, piece = lin & 15;
                int p = c0 + row;
                Ld.U4(kBytes, RowByte(p, piece, count, kvDim, kvBase, dimTiles), out uint k0, out uint k1, out uint k2, out uint k3);
                if (p >= count || 8 * piece >= headDim) { k0 = 0; k1 = 0; k2 = 0; k3 = 0; }
                var kd = ks.SubView(row * KStride + 4 * piece);
                kd[0] = k0; kd[1] = k1; kd[2] = k2; kd[3] = k3;
            }
            // V transposed: a thread 8 dims of two consecutive rows, joined into 8 words (dim 8·piece + j, positions
            // 2·pair and 2·pair + 1); a warp's lanes take 32 pairs of one piece, so its stores fall in 32 banks.
            for (int i = 0; i < ChunkPositions / 2 * MaxHeadDim / 8 / (Warps * 32); i++)
            {
                int lin = tid + Warps * 32 * i, pair = lin & 31, piece = lin >> 5;
                int p = c0 + 2 * pair;
                Ld.U4(vBytes, RowByte(p, piece, count, kvDim, kvBase, dimTiles), out uint a0, out uint a1, out uint a2, out uint a3);
                Ld.U4(vBytes, RowByte(p + 1, piece, count, kvDim, kvBase, dimTiles), out uint b0, out uint b1, out uint b2, out uint b3);
                if (p >= count || 8 * piece >= headDim) { a0 = 0; a1 = 0; a2 = 0; a3 = 0; }
                if (p + 1 >= count || 8 * piece >= headDim) { b0 = 0; b1 = 0; b2 = 0; b3 = 0; }
                var vd = vs.SubView(8 * piece * VStride + pair);
                vd[0] = (a0 & 0xFFFF) | (b0 << 16); vd[VStride] = (a0 >> 16) | (b0 & 0xFFFF0000u);
                vd[2 * VStride] = (a1 & 0xFFFF) | (b1 << 16); vd[3 * VStride] = (a1 >> 16) | (b1 & 0xFFFF0000u);
                vd[4 * VStride] = (a2 & 0xFFFF) | (b2 << 16); vd[5 * VStride] = (a2 >> 16) | (b2 & 0xFFFF0000u);
                vd[6 * VStride] = (a3 & 0xFFFF) | (b3 << 16); vd[7 * VStride] = (a3 >> 16) | (b3 & 0xFFFF0000u);
            }
            Group.Barrier();
            if (c0 > mine) continue;   // none of the warp's tokens reaches this chunk (the warp still joins the barriers)

            // Scores of the 8 position tiles (positions c0 + 8j .. + 7), scaled and masked.
            var s = default(STile);
            var kf = ks.SubView(g * KStride + t);   // fragments are this view plus constants (no address sum a load)
            s.N0 = Scores(qf, kf, 0, kSteps); s.N1 = Scores(qf, kf, 1, kSteps);
            s.N2 = Scores(qf, kf, 2, kSteps); s.N3 = Scores(qf, kf, 3, kSteps);
            s.N4 = Scores(qf, kf, 4, kSteps); s.N5 = Scores(qf, kf, 5, kSteps);
            s.N6 = Scores(qf, kf, 6, kSteps); s.N7 = Scores(qf, kf, 7, kSteps);
            int p0 = c0 + 2 * t;
            float xA = -1e30f, xB = -1e30f;
            Mask(ref s.N0, p0, posA, posB, scale, ref xA, ref xB); Mask(ref s.N1, p0 + 8, posA, posB, scale, ref xA, ref xB);
            Mask(ref s.N2, p0 + 16, posA, posB, scale, ref xA, ref xB); Mask(ref s.N3, p0 + 24, posA, posB, scale, ref xA, ref xB);
            Mask(ref s.N4, p0 + 32, posA, posB, scale, ref xA, ref xB); Mask(ref s.N5, p0 + 40, posA, posB, scale, ref xA, ref xB);
            Mask(ref s.N6, p0 + 48, posA, posB, scale, ref xA, ref xB); Mask(ref s.N7, p0 + 56, posA, posB, scale, ref xA, ref xB);
            // The row maxima over the quad (the four lanes of a row), then the online softmax's rescale.
            xA = IntrinsicMath.Max(xA, Warp.ShuffleXor(xA, 1)); xA = IntrinsicMath.Max(xA, Warp.ShuffleXor(xA, 2));
            xB = IntrinsicMath.Max(xB, Warp.ShuffleXor(xB, 1)); xB = IntrinsicMath.Max(xB, Warp.ShuffleXor(xB, 2));
            float nA = IntrinsicMath.Max(mA, xA), nB = IntrinsicMath.Max(mB, xB);
            float fA = MathF.Exp(mA - nA), fB = MathF.Exp(mB - nB);
            mA = nA; mB = nB;
            float sumA = 0, sumB = 0;
            var w0 = Weights(s.N0, s.N1, nA, nB, ref sumA, ref sumB);
            var w1 = Weights(s.N2, s.N3, nA, nB, ref sumA, ref sumB);
            var w2 = Weights(s.N4, s.N5, nA, nB, ref sumA, ref sumB);
            var w3 = Weights(s.N6, s.N7, nA, nB, ref sumA, ref sumB);
            lA = lA * fA + sumA;
            lB = lB * fB + sumB;
            o = Rescale(o, fA, fB, dimTiles);
            var vf = vs.SubView(g * VStride + t);
            o = WeightedV(o, w0, vf, 0, dimTiles);
            o = WeightedV(o, w1, vf, 1, dimTiles);
            o = WeightedV(o, w2, vf, 2, dimTiles);
            o = WeightedV(o, w3, vf, 3, dimTiles);
        }

        // Normalize; hand the rows to lanes that hold 32 consecutive dims of one token.
        lA += Warp.ShuffleXor(lA, 1); lA += Warp.ShuffleXor(lA, 2);
        lB += Warp.ShuffleXor(lB, 1); lB += Warp.ShuffleXor(lB, 2);
        float iA = lA > 0 ? 1f / lA : 0f, iB = lB > 0 ? 1f / lB : 0f;
        Group.Barrier();   // the last chunk's tiles are read
        var os = smem.Cast<float>();
        int ob = warp * TokensPerWarp * OStride + g * OStride + 2 * t;
        StoreO(os, ob, o, iA, iB, dimTiles);
        Group.Barrier();
        int cols = nHead * headDim;
        for (int r = 0; r < TokensPerWarp; r++)
        {
            int token = tok0 + r;
            if (token >= nTokens) break;   // uniform over the warp
            for (int e = lane; e < headDim; e += 32)
            {
                float v = os[warp * TokensPerWarp * OStride + r * OStride + e];
                y[((long)token * nHead + head) * headDim + e] = v;
                Quantize.Store1(v, yq, token, cols, head * headDim + e);
            }
        }
    }

    /// <summary>Byte offset of dims 8·piece .. 8·piece + 7 of position p's row in a layer's cache (rows past the
    /// context and pieces past head_dim clamped to the last; their values are replaced by zeros).</summary>
    private static int RowByte(int p, int piece, int count, int kvDim, long kvBase, int dimTiles) =>
        (int)(2 * ((long)IntrinsicMath.Min(p, count - 1) * kvDim + kvBase + 8 * IntrinsicMath.Min(piece, dimTiles - 1)));

    private static int IntMax(int v)
    {
        v = IntrinsicMath.Max(v, Warp.ShuffleXor(v, 16));
        v = IntrinsicMath.Max(v, Warp.ShuffleXor(v, 8));
        v = IntrinsicMath.Max(v, Warp.ShuffleXor(v, 4));
        v = IntrinsicMath.Max(v, Warp.ShuffleXor(v, 2));
        return IntrinsicMath.Max(v, Warp.ShuffleXor(v, 1));
    }

    /// <summary>The A fragment registers of one 16 × 16 k-step: rows g, g + 8 (a0, a1: columns 2t, 2t + 1; a2, a3:
    /// columns 2t + 8, 2t + 9), f16 pairs.</summary>
    public struct AFrag
    {
        public uint A0, A1, A2, A3;
    }

    /// <summary>q of the warp's 16 tokens, all head dims: one A fragment a k-step (16 dims).</summary>
    public struct QFrags
    {
        public AFrag K0, K1, K2, K3, K4, K5, K6, K7;
    }

    /// <summary>A warp's scores of one chunk: 16 tokens × 64 positions.</summary>
    public struct STile
    {
        public Acc N0, N1, N2, N3, N4, N5, N6, N7;
    }

    /// <summary>A warp's output: 16 tokens × 128 dims (16 tiles of 8 dims).</summary>
    public struct OTile
    {
        public Acc N0, N1, N2, N3, N4, N5, N6, N7, N8, N9, N10, N11, N12, N13, N14, N15;
    }

    private static QFrags LoadQ(ArrayView<float> q, int ra, int rb, int nTokens, int nHead, int head, int headDim, int t, int kSteps)
    {
        long a = ((long)IntrinsicMath.Min(ra, nTokens - 1) * nHead + head) * headDim + 2 * t;
        long b = ((long)IntrinsicMath.Min(rb, nTokens - 1) * nHead + head) * headDim + 2 * t;
        bool va = ra < nTokens, vb = rb < nTokens;
        var f = default(QFrags);
        f.K0 = QStep(q, a, b, va, vb, 0, kSteps); f.K1 = QStep(q, a, b, va, vb, 1, kSteps);
        f.K2 = QStep(q, a, b, va, vb, 2, kSteps); f.K3 = QStep(q, a, b, va, vb, 3, kSteps);
        f.K4 = QStep(q, a, b, va, vb, 4, kSteps); f.K5 = QStep(q, a, b, va, vb, 5, kSteps);
        f.K6 = QStep(q, a, b, va, vb, 6, kSteps); f.K7 = QStep(q, a, b, va, vb, 7, kSteps);
        return f;
    }

    private static AFrag QStep(ArrayView<float> q, long a, long b, bool va, bool vb, int k, int kSteps)
    {
        if (k >= kSteps) return default;
        long d = 16 * k;
        return new AFrag
        {
            A0 = va ? Pack(q[a + d], q[a + d + 1]) : 0, A1 = vb ? Pack(q[b + d], q[b + d + 1]) : 0,
            A2 = va ? Pack(q[a + d + 8], q[a + d + 9]) : 0, A3 = vb ? Pack(q[b + d + 8], q[b + d + 9]) : 0,
        };
    }

    /// <summary>Scores of position tile <paramref name="j"/> (positions 8j .. 8j + 7 of the chunk) over the head dims;
    /// <paramref name="ks"/> starts at the lane's word t of position g.</summary>
    private static Acc Scores(QFrags q, ArrayView<uint> ks, int j, int kSteps)
    {
        var acc = default(Acc);
        int at = 8 * j * KStride;
        acc = KStep(acc, q.K0, ks, at, 0, kSteps); acc = KStep(acc, q.K1, ks, at, 1, kSteps);
        acc = KStep(acc, q.K2, ks, at, 2, kSteps); acc = KStep(acc, q.K3, ks, at, 3, kSteps);
        acc = KStep(acc, q.K4, ks, at, 4, kSteps); acc = KStep(acc, q.K5, ks, at, 5, kSteps);
        acc = KStep(acc, q.K6, ks, at, 6, kSteps); acc = KStep(acc, q.K7, ks, at, 7, kSteps);
        return acc;
    }

    /// <summary>B fragment of K for k-step k: b0 = dims 16k + 2t, +1 of position g (word 8k + t of its row), b1 = dims
    /// 16k + 8 + 2t, +1 (word 8k + 4 + t).</summary>
    private static Acc KStep(Acc acc, AFrag a, ArrayView<uint> ks, int at, int k, int kSteps) =>
        k < kSteps ? Mma(a, ks[at + 8 * k], ks[at + 8 * k + 4], acc) : acc;

    /// <summary>Scales the tile's scores, masks positions past each token's own (and tokens past the step, whose position
    /// is −1) to −1e30, and folds the row maxima of the unmasked ones into <paramref name="xA"/>, <paramref name="xB"/>.</summary>
    private static void Mask(ref Acc s, int p, int posA, int posB, float scale, ref float xA, ref float xB)
    {
        s.C0 = p <= posA ? s.C0 * scale : -1e30f;
        s.C1 = p + 1 <= posA ? s.C1 * scale : -1e30f;
        s.C2 = p <= posB ? s.C2 * scale : -1e30f;
        s.C3 = p + 1 <= posB ? s.C3 * scale : -1e30f;
        xA = IntrinsicMath.Max(xA, IntrinsicMath.Max(s.C0, s.C1));
        xB = IntrinsicMath.Max(xB, IntrinsicMath.Max(s.C2, s.C3));
    }

    /// <summary>The weights exp(s − max) of two position tiles (16 positions) as the A fragment of one PV k-step, their
    /// sums added to the lane's row sums; masked scores weigh 0.</summary>
    private static AFrag Weights(Acc lo, Acc hi, float mA, float mB, ref float sumA, ref float sumB)
    {
        float a0 = Weight(lo.C0, mA), a1 = Weight(lo.C1, mA), b0 = Weight(lo.C2, mB), b1 = Weight(lo.C3, mB);
        float a2 = Weight(hi.C0, mA), a3 = Weight(hi.C1, mA), b2 = Weight(hi.C2, mB), b3 = Weight(hi.C3, mB);
        sumA += a0 + a1 + a2 + a3;
        sumB += b0 + b1 + b2 + b3;
        return new AFrag { A0 = Pack(a0, a1), A1 = Pack(b0, b1), A2 = Pack(a2, a3), A3 = Pack(b2, b3) };
    }

    private static float Weight(float s, float m) => s > -1e29f ? MathF.Exp(s - m) : 0f;

    private static OTile Rescale(OTile o, float fA, float fB, int tiles)
    {
        o.N0 = Scale(o.N0, fA, fB); o.N1 = Scale(o.N1, fA, fB); o.N2 = Scale(o.N2, fA, fB); o.N3 = Scale(o.N3, fA, fB);
        if (tiles > 4) { o.N4 = Scale(o.N4, fA, fB); o.N5 = Scale(o.N5, fA, fB); o.N6 = Scale(o.N6, fA, fB); o.N7 = Scale(o.N7, fA, fB); }
        if (tiles > 8) { o.N8 = Scale(o.N8, fA, fB); o.N9 = Scale(o.N9, fA, fB); o.N10 = Scale(o.N10, fA, fB); o.N11 = Scale(o.N11, fA, fB); }
        if (tiles > 12) { o.N12 = Scale(o.N12, fA, fB); o.N13 = Scale(o.N13, fA, fB); o.N14 = Scale(o.N14, fA, fB); o.N15 = Scale(o.N15, fA, fB); }
        return o;
    }

    private static Acc Scale(Acc a, float fA, float fB) => new() { C0 = a.C0 * fA, C1 = a.C1 * fA, C2 = a.C2 * fB, C3 = a.C3 * fB };

    /// <summary>o += w·V for PV k-step <paramref name="kk"/> (positions 16kk .. 16kk + 15 of the chunk), every dim tile;
    /// <paramref name="vs"/> starts at the lane's word t of dim g's transposed row.</summary>
    private static OTile WeightedV(OTile o, AFrag w, ArrayView<uint> vs, int kk, int tiles)
    {
        int at = 8 * kk;
        o.N0 = VTile(o.N0, w, vs, at, 0); o.N1 = VTile(o.N1, w, vs, at, 1); o.N2 = VTile(o.N2, w, vs, at, 2); o.N3 = VTile(o.N3, w, vs, at, 3);
        if (tiles > 4) { o.N4 = VTile(o.N4, w, vs, at, 4); o.N5 = VTile(o.N5, w, vs, at, 5); o.N6 = VTile(o.N6, w, vs, at, 6); o.N7 = VTile(o.N7, w, vs, at, 7); }
        if (tiles > 8) { o.N8 = VTile(o.N8, w, vs, at, 8); o.N9 = VTile(o.N9, w, vs, at, 9); o.N10 = VTile(o.N10, w, vs, at, 10); o.N11 = VTile(o.N11, w, vs, at, 11); }
        if (tiles > 12) { o.N12 = VTile(o.N12, w, vs, at, 12); o.N13 = VTile(o.N13, w, vs, at, 13); o.N14 = VTile(o.N14, w, vs, at, 14); o.N15 = VTile(o.N15, w, vs, at, 15); }
        return o;
    }

    /// <summary>B fragment of V for dim tile n: b0 = positions 2t, 2t + 1 of dim 8n + g (word 8kk + t of the dim's
    /// transposed row), b1 = positions 2t + 8, 2t + 9 (word 8kk + 4 + t).</summary>
    private static Acc VTile(Acc acc, AFrag w, ArrayView<uint> vs, int at, int n) =>
        Mma(w, vs[at + 8 * n * VStride], vs[at + 8 * n * VStride + 4], acc);

    private static void StoreO(ArrayView<float> os, int at, OTile o, float iA, float iB, int tiles)
    {
        StoreTile(os, at, o.N0, iA, iB); StoreTile(os, at + 8, o.N1, iA, iB); StoreTile(os, at + 16, o.N2, iA, iB); StoreTile(os, at + 24, o.N3, iA, iB);
        if (tiles > 4) { StoreTile(os, at + 32, o.N4, iA, iB); StoreTile(os, at + 40, o.N5, iA, iB); StoreTile(os, at + 48, o.N6, iA, iB); StoreTile(os, at + 56, o.N7, iA, iB); }
        if (tiles > 8) { StoreTile(os, at + 64, o.N8, iA, iB); StoreTile(os, at + 72, o.N9, iA, iB); StoreTile(os, at + 80, o.N10, iA, iB); StoreTile(os, at + 88, o.N11, iA, iB); }
        if (tiles > 12) { StoreTile(os, at + 96, o.N12, iA, iB); StoreTile(os, at + 104, o.N13, iA, iB); StoreTile(os, at + 112, o.N14, iA, iB); StoreTile(os, at + 120, o.N15, iA, iB); }
    }

    private static void StoreTile(ArrayView<float> os, int at, Acc a, float iA, float iB)
    {
        os[at] = a.C0 * iA; os[at + 1] = a.C1 * iA;
        os[at + 8 * OStride] = a.C2 * iB; os[at + 8 * OStride + 1] = a.C3 * iB;
    }

    /// <summary>Two floats rounded to f16 (nearest even) in one word, <paramref name="lo"/> in the low half: PTX
    /// cvt.rn.f16x2.f32 on the GPU, the same rounding by integer arithmetic on ILGPU's CPU accelerator.</summary>
    public static uint Pack(float lo, float hi)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("cvt.rn.f16x2.f32 %0, %1, %2;", out uint r, hi, lo);
            return r;
        }
        return HalfBits(lo) | (HalfBits(hi) << 16);
    }

    /// <summary>The f16 bits of <paramref name="v"/>, rounded to nearest even (finite values up to 65504).</summary>
    public static uint HalfBits(float v)
    {
        uint b = Interop.FloatAsInt(v), sign = (b >> 16) & 0x8000u;
        float a = IntrinsicMath.Abs(v);
        if (a >= 6.103515625e-5f)   // 2^-14: a normal f16
        {
            uint r = Interop.FloatAsInt(Formats.Ld.RoundToHalf(a));
            return sign | (((r >> 23) - 112) << 10) | ((r >> 13) & 0x3FF);
        }
        return sign | (uint)(int)(a * 16777216f + 12582912f - 12582912f);   // multiples of 2^-24, ties to even
    }

    /// <summary>D = A·B + C for one m16n8k16 tile (f16 A and B, f32 C and D; PTX ISA "Matrix Fragments for
    /// mma.m16n8k16"). On ILGPU's CPU accelerator: the lane's four elements from the other lanes' fragments by shuffles
    /// (A[r][k] is in lane 4·(r mod 8) + (k mod 8)/2, register a0..a3 by r ≥ 8 and k ≥ 8; B[k][n] in lane 4n + (k mod
    /// 8)/2, b0 or b1 by k ≥ 8), summed in k order.</summary>
    public static Acc Mma(AFrag a, uint b0, uint b1, Acc c)
    {
        if (CudaAsm.IsSupported)
        {
            Input<uint> a0 = a.A0, a1 = a.A1, a2 = a.A2, a3 = a.A3, ib0 = b0, ib1 = b1;
            Input<float> c0 = c.C0, c1 = c.C1, c2 = c.C2, c3 = c.C3;
            Output<float> d0 = default, d1 = default, d2 = default, d3 = default;
            CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};",
                ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref ib0, ref ib1, ref c0, ref c1, ref c2, ref c3);
            return new Acc { C0 = d0.Value, C1 = d1.Value, C2 = d2.Value, C3 = d3.Value };
        }
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int k = 0; k < 16; k++)
        {
            int pair = (k & 7) >> 1, half = 16 * (k & 1);
            uint lo = Warp.Shuffle(k < 8 ? a.A0 : a.A2, 4 * g + pair), hi = Warp.Shuffle(k < 8 ? a.A1 : a.A3, 4 * g + pair);
            uint n0 = Warp.Shuffle(k < 8 ? b0 : b1, 4 * (2 * t) + pair), n1 = Warp.Shuffle(k < 8 ? b0 : b1, 4 * (2 * t + 1) + pair);
            float ag = Formats.Ld.Half(lo >> half), ag8 = Formats.Ld.Half(hi >> half);
            float bn0 = Formats.Ld.Half(n0 >> half), bn1 = Formats.Ld.Half(n1 >> half);
            s0 += ag * bn0; s1 += ag * bn1; s2 += ag8 * bn0; s3 += ag8 * bn1;
        }
        return new Acc { C0 = c.C0 + s0, C1 = c.C1 + s1, C2 = c.C2 + s2, C3 = c.C3 + s3 };
    }
}
