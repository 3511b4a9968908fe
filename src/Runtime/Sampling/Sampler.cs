using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Engine.Runtime.Sampling;

/// <summary>Sampling settings with llama.cpp's defaults (common.h common_params_sampling).</summary>
public sealed record SamplerSettings
{
    /// <summary>0 or less: greedy (argmax, ties to the lowest id).</summary>
    public float Temperature { get; init; } = 0.8f;
    /// <summary>0 or less: disabled.</summary>
    public int TopK { get; init; } = 40;
    /// <summary>1: disabled.</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>0: disabled.</summary>
    public float MinP { get; init; } = 0.05f;
    /// <summary>1: disabled.</summary>
    public float RepeatPenalty { get; init; } = 1.0f;
    /// <summary>Window of recent tokens the repetition penalty looks at.</summary>
    public int RepeatLastN { get; init; } = 64;
    public ulong Seed { get; init; }

    /// <summary>Greedy with no repetition penalty: the next token is the argmax of the logits alone (what a device
    /// argmax computes; <see cref="Session.Generate"/>).</summary>
    public bool IsPlainGreedy => Temperature <= 0 && (RepeatPenalty == 1.0f || RepeatLastN == 0);
}

/// <summary>llama.cpp's common sampler chain (common/sampling.cpp, llama-sampling.cpp): penalties → top-k → top-p →
/// min-p → temperature → draw. Every buffer is sized to the vocabulary once; <see cref="Sample"/> allocates
/// nothing. Candidates are kept sorted by logit, descending (ties by id), after top-k.</summary>
public sealed class Sampler
{
    private readonly SamplerSettings _settings;
    private readonly float[] _logits;      // [n_vocab] working copy
    private readonly int[] _ids;           // [n_vocab] candidate ids
    private readonly float[] _keys;        // [n_vocab] sort keys
    private readonly int[] _seen;          // [n_vocab] stamp per token: penalised in this call
    private int _stamp;
    private Xoshiro256StarStar _rng;

    public SamplerSettings Settings => _settings;

    public Sampler(int vocabSize, SamplerSettings settings)
    {
        _settings = settings;
        _logits = new float[vocabSize];
        _ids = new int[vocabSize];
        _keys = new float[vocabSize];
        _seen = new int[vocabSize];
        _rng = new Xoshiro256StarStar(settings.Seed);
    }

    /// <summary>Picks the next token from <paramref name="logits"/>; <paramref name="history"/> is every token so far
    /// (prompt included), of which the last RepeatLastN feed the repetition penalty.</summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history)
    {
        var s = _settings;
        int vocab = _logits.Length;
        logits.CopyTo(_logits);
        ApplyRepeatPenalty(history);

        if (s.Temperature <= 0) return ArgMax(_logits);

        // top-k (llama_sampler_top_k_impl): the k best, sorted; k ≤ 0 keeps all (and still sorts, as top-p needs).
        int k = s.TopK > 0 ? Math.Min(s.TopK, vocab) : vocab;
        int n = SelectTop(k);

        // top-p (llama_sampler_top_p_apply): smallest prefix whose probability reaches p.
        if (s.TopP < 1.0f)
        {
            double max = _keys[0], sum = 0;
            for (int i = 0; i < n; i++) sum += Math.Exp(_keys[i] - max);
            double cum = 0;
            for (int i = 0; i < n; i++)
            {
                cum += Math.Exp(_keys[i] - max) / sum;
                if (cum >= s.TopP) { n = i + 1; break; }
            }
        }

        // min-p (llama_sampler_min_p_apply): keep p ≥ min_p · p_max, i.e. logit ≥ max + ln(min_p).
        if (s.MinP > 0)
        {
            float threshold = _keys[0] + MathF.Log(s.MinP);
            int kept = 1;
            while (kept < n && _keys[kept] >= threshold) kept++;
            n = kept;
        }

        // temperature, then draw from the softmax (llama_sampler_dist).
        double top = _keys[0] / s.Temperature, total = 0;
        for (int i = 0; i < n; i++) total += Math.Exp(_keys[i] / s.Temperature - top);
        double u = _rng.NextDouble() * total, acc = 0;
        for (int i = 0; i < n; i++)
        {
            acc += Math.Exp(_keys[i] / s.Temperature - top);
            if (u < acc) return _ids[i];
        }
        return _ids[n - 1];
    }

    /// <summary>llama.cpp's repetition penalty: each distinct token of the window has its logit divided by the
    /// penalty when positive, multiplied when negative (llama_sampler_penalties_apply).</summary>
    private void ApplyRepeatPenalty(ReadOnlySpan<int> history)
    {
        float penalty = _settings.RepeatPenalty;
        int window = _settings.RepeatLastN < 0 ? history.Length : Math.Min(_settings.RepeatLastN, history.Length);
        if (penalty == 1.0f || window == 0) return;
        if (++_stamp == int.MaxValue) { Array.Clear(_seen); _stamp = 1; }
        foreach (int t in history[^window..])
        {
            if ((uint)t >= (uint)_logits.Length || _seen[t] == _stamp) continue;
            _seen[t] = _stamp;
            _logits[t] = _logits[t] > 0 ? _logits[t] / penalty : _logits[t] * penalty;
        }
    }

    /// <summary>Argmax with ties to the lowest id. Vectorized (the greedy decode runs it on every token: a 128k
    /// vocabulary took ~70 µs a token in the scalar loop on the 2-core machine, ~20 µs so): the maximum by four
    /// Vector256 accumulators, then the first element equal to it. Any NaN takes the scalar loop, whose answer it
    /// keeps (a NaN never wins a comparison, so it is chosen only at id 0).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        var v = MemoryMarshal.Cast<float, Vector256<float>>(logits);
        if (v.Length < 4) return ArgMaxScalar(logits);
        Vector256<float> m0 = v[0], m1 = v[1], m2 = v[2], m3 = v[3];
        var ordered = Vector256.Equals(m0, m0) & Vector256.Equals(m1, m1) & Vector256.Equals(m2, m2) & Vector256.Equals(m3, m3);
        int i = 4;
        for (; i + 3 < v.Length; i += 4)
        {
            Vector256<float> a = v[i], b = v[i + 1], c = v[i + 2], d = v[i + 3];
            m0 = Vector256.Max(m0, a); m1 = Vector256.Max(m1, b); m2 = Vector256.Max(m2, c); m3 = Vector256.Max(m3, d);
            ordered &= Vector256.Equals(a, a) & Vector256.Equals(b, b) & Vector256.Equals(c, c) & Vector256.Equals(d, d);
        }
        for (; i < v.Length; i++)
        {
            m0 = Vector256.Max(m0, v[i]);
            ordered &= Vector256.Equals(v[i], v[i]);
        }
        // (a bitwise test: as floats the all-ones lanes are NaNs, which compare unequal to themselves)
        if (ordered.ExtractMostSignificantBits() != (1u << Vector256<float>.Count) - 1) return ArgMaxScalar(logits);
        m0 = Vector256.Max(Vector256.Max(m0, m1), Vector256.Max(m2, m3));
        float max = m0.GetElement(0);
        for (int k = 1; k < Vector256<float>.Count; k++) max = MathF.Max(max, m0.GetElement(k));
        int tail = v.Length * Vector256<float>.Count;
        for (int k = tail; k < logits.Length; k++)
        {
            if (float.IsNaN(logits[k])) return ArgMaxScalar(logits);
            max = MathF.Max(max, logits[k]);
        }
        var target = Vector256.Create(max);
        for (int j = 0; j < v.Length; j++)
        {
            uint hits = Vector256.Equals(v[j], target).ExtractMostSignificantBits();
            if (hits != 0) return j * Vector256<float>.Count + BitOperations.TrailingZeroCount(hits);
        }
        for (int k = tail; k < logits.Length; k++)
            if (logits[k] == max) return k;
        return 0;   // not reached: max is one of the elements
    }

    /// <summary>The reference loop <see cref="ArgMax"/> keeps the answer of.</summary>
    public static int ArgMaxScalar(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Puts the <paramref name="k"/> largest logits, descending (ties by lower id), in _keys/_ids[0..k).</summary>
    private int SelectTop(int k)
    {
        int vocab = _logits.Length;
        // A min-heap of the k best seen so far (root = the worst of them): O(n log k), no allocation.
        int size = 0, id = 0;
        for (; id < vocab && size < k; id++) { _keys[size] = _logits[id]; _ids[size] = id; SiftUp(size++); }
        // Once the heap is full, a later id enters only with a logit above the root's (a tie loses: its id is higher),
        // so eight logits at a time that none exceeds are passed over: after the first few thousand ids nearly all
        // are (a 128k vocabulary ~4x faster than one comparison a logit; the same heap either way).
        var v = MemoryMarshal.Cast<float, Vector256<float>>(_logits);
        int width = Vector256<float>.Count;
        for (; id < vocab; id++)
        {
            if ((id & (width - 1)) == 0 && id / width < v.Length && !Vector256.GreaterThanAny(v[id / width], Vector256.Create(_keys[0])))
            {
                id += width - 1;
                continue;
            }
            float x = _logits[id];
            if (Better(x, id, _keys[0], _ids[0])) { _keys[0] = x; _ids[0] = id; SiftDown(0, size); }
        }
        // Heap sort in place: repeatedly move the worst to the end, giving descending order.
        for (int end = size - 1; end > 0; end--)
        {
            Swap(0, end);
            SiftDown(0, end);
        }
        return size;
    }

    private static bool Better(float a, int ida, float b, int idb) => a > b || (a == b && ida < idb);

    private void SiftUp(int i)
    {
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (!Better(_keys[parent], _ids[parent], _keys[i], _ids[i])) break;   // parent must be the worse one
            Swap(i, parent);
            i = parent;
        }
    }

    private void SiftDown(int i, int size)
    {
        while (true)
        {
            int l = 2 * i + 1, r = l + 1, worst = i;
            if (l < size && Better(_keys[worst], _ids[worst], _keys[l], _ids[l])) worst = l;
            if (r < size && Better(_keys[worst], _ids[worst], _keys[r], _ids[r])) worst = r;
            if (worst == i) return;
            Swap(i, worst);
            i = worst;
        }
    }

    private void Swap(int a, int b)
    {
        (_keys[a], _keys[b]) = (_keys[b], _keys[a]);
        (_ids[a], _ids[b]) = (_ids[b], _ids[a]);
    }
}
