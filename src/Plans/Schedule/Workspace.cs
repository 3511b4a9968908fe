using Engine.Graph;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Schedule;

/// <summary>One non-weight buffer of the program. <see cref="FirstUse"/>/<see cref="LastUse"/> are op indices in
/// prologue + one layer body + epilogue order; -1/-1 means live for the whole run.</summary>
public sealed record ProgramBuffer(string Name, BufferRole Role, long Size, int FirstUse, int LastUse)
{
    public bool WholeRun => FirstUse < 0;
    public bool LiveTogether(ProgramBuffer o) =>
        WholeRun || o.WholeRun || (FirstUse <= o.LastUse && o.FirstUse <= LastUse);
}

/// <summary>The program's scratch memory: inputs, activations placed by lifetime, outputs (one region, reused by
/// every layer) and the per-layer KV cache size. Element types as the spec declares them: i32 inputs, f16 KV cache,
/// f32 activations and outputs.</summary>
public sealed record Workspace(IReadOnlyList<ProgramBuffer> Buffers, IReadOnlyList<long> Offsets, long Size,
    IReadOnlyList<(string Name, long Size)> KvPerLayer)
{
    public const int Alignment = 256;

    /// <summary>A layer's persistent buffers (KV cache, attention's range counters) as the planner places them: each
    /// at an <see cref="Alignment"/>-aligned offset.</summary>
    public long KvBytesPerLayer => KvPerLayer.Sum(k => Align(k.Size, Alignment));

    public static Workspace Build(LayerProgram program, ModelShapes shapes)
    {
        var ops = program.AllOps.ToList();
        int bodyStart = program.Prologue.Count, bodyEnd = bodyStart + program.Layer.Count - 1;
        var uses = new Dictionary<string, List<(int Op, bool Write)>>(StringComparer.Ordinal);
        for (int i = 0; i < ops.Count; i++)
        {
            foreach (var n in ops[i].Inputs) Use(n, i, false);
            foreach (var n in ops[i].Outputs) Use(n, i, true);
        }
        void Use(string name, int op, bool write)
        {
            if (!uses.TryGetValue(name, out var l)) uses[name] = l = new();
            l.Add((op, write));
        }

        var buffers = new List<ProgramBuffer>();
        var kv = new List<(string, long)>();
        foreach (var t in program.Tensors)
        {
            if (t.Role == TensorRole.Weight) continue;
            long bytes = checked(shapes.Elements(t.Shape) * ElementBytes(t.ElementType));
            if (t.Role == TensorRole.KvCache) { kv.Add((t.Name, bytes)); continue; }
            if (!uses.TryGetValue(t.Name, out var u)) continue; // declared but unused: no memory
            var role = t.Role switch { TensorRole.Input => BufferRole.Input, TensorRole.Output => BufferRole.Output, _ => BufferRole.Activation };
            if (role != BufferRole.Activation) { buffers.Add(new(t.Name, role, bytes, -1, -1)); continue; }
            int first = u.Min(x => x.Op), last = u.Max(x => x.Op);
            // A value carried around the layer loop (read in the body before the body writes it, or used both inside
            // and outside the body, like the residual stream) stays live across the whole body.
            var inBody = u.Where(x => x.Op >= bodyStart && x.Op <= bodyEnd).OrderBy(x => x.Op).ThenBy(x => x.Write).ToList();
            bool outside = u.Any(x => x.Op < bodyStart || x.Op > bodyEnd);
            if (inBody.Count > 0 && (outside || !inBody[0].Write))
            {
                first = Math.Min(first, bodyStart);
                last = Math.Max(last, bodyEnd);
            }
            buffers.Add(new(t.Name, role, bytes, first, last));
        }
        buffers = buffers.OrderBy(b => b.WholeRun ? -1 : b.FirstUse).ThenBy(b => b.Name, StringComparer.Ordinal).ToList();
        var (offsets, size) = PlaceByLifetime(buffers, Alignment);
        return new Workspace(buffers, offsets, size, kv);
    }

    /// <summary>Greedy by size (TFLite lite/micro/memory_planner/greedy_memory_planner.cc): largest first, each at
    /// the lowest aligned offset where it overlaps no placed buffer whose lifetime intersects its own.</summary>
    public static (long[] Offsets, long Size) PlaceByLifetime(IReadOnlyList<ProgramBuffer> buffers, int alignment)
    {
        var order = Enumerable.Range(0, buffers.Count)
            .OrderByDescending(i => buffers[i].Size).ThenBy(i => buffers[i].Name, StringComparer.Ordinal).ToList();
        var offsets = new long[buffers.Count];
        var placed = new List<int>();
        long size = 0;
        foreach (int i in order)
        {
            var b = buffers[i];
            long at = 0;
            foreach (int j in placed.Where(j => buffers[j].LiveTogether(b)).OrderBy(j => offsets[j]))
            {
                if (at + b.Size <= offsets[j]) break;
                at = Math.Max(at, Align(offsets[j] + buffers[j].Size, alignment));
            }
            offsets[i] = at;
            placed.Add(i);
            size = Math.Max(size, Align(at + b.Size, alignment));
        }
        return (offsets, size);
    }

    /// <summary>Bytes per element of a non-weight tensor: u8 (quantized activations, shaped in bytes) 1, f16 (the KV
    /// cache, as llama.cpp's default) 2, f32/i32 4.</summary>
    public static int ElementBytes(string elementType) => elementType switch
    {
        "u8" => 1,
        "f16" => 2,
        "f32" or "i32" => 4,
        _ => throw new PlanException($"layer program: element type {elementType} of a buffer is not u8, f16, f32 or i32"),
    };

    public static long Align(long x, long a) => (x + a - 1) / a * a;
}
