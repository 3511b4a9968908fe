using System.Buffers.Binary;
using Engine.Plans.PlanFile;
using Engine.Runtime.Generated;

namespace Engine.Runtime.Cuda;

/// <summary>Packs a plan's launch arguments into the PTX argument block of its entry point: the bytes of the
/// generated launcher struct (<c>Launchers.&lt;Entry&gt;</c>), written by the parameter offsets of the runtime's
/// <see cref="KernelTable"/> (docs/plan-format.md "instructions"; ILGPU's ABI in docs/kernels.md: a view is
/// {u64 address, i64 length in elements}, i32/f32 4 bytes, an implicit kernel's extent first).</summary>
public static class ArgumentBlocks
{
    /// <summary>Bytes reserved per block: the largest launcher struct rounded up, so any block can be read back as
    /// its struct (<see cref="Launchers.ShapeOf"/>).</summary>
    public static int Stride { get; } = KernelTable.All.Max(e => (e.ArgumentBytes + 7) / 8 * 8);

    /// <summary>Checks once, at load, that the plan's kernels and launches agree with this runtime's launchers:
    /// ids, entry names, argument bytes, one argument per parameter of a fitting kind. Null when they do, else one
    /// line naming the instruction or kernel.</summary>
    public static string? Verify(Plan plan)
    {
        var table = KernelTable.All;
        foreach (var k in plan.Kernels)
        {
            if (k.Id >= table.Count || table[(int)k.Id].Name != k.Entry || table[(int)k.Id].ArgumentBytes != k.ArgumentBytes)
                return $"kernel {k.Id} {k.Entry} ({k.ArgumentBytes} argument bytes) is not this runtime's kernel {k.Id}"
                    + (k.Id < table.Count ? $" ({table[(int)k.Id].Name}, {table[(int)k.Id].ArgumentBytes} bytes)" : "") + ": re-run ntc plan";
        }
        for (int i = 0; i < plan.Instructions.Count; i++)
        {
            var ins = plan.Instructions[i];
            if (ins.Opcode != Opcode.Launch) continue;
            var e = table[(int)ins.KernelId];
            foreach (var (has, id, what) in new[] { (ins.HasBatchKernel, ins.BatchKernelId, "batch"), (ins.HasShortKernel, ins.ShortKernelId, "short") })
            {
                if (!has) continue;
                var b = table[(int)id];
                if (!b.TakesArgumentsOf(e))
                    return $"instruction {i} ({ins.OpName}): {what} kernel {b.Name} does not take the arguments of {e.Name}: re-run ntc plan";
            }
            if (ins.Arguments.Length != e.Params.Count)
                return $"instruction {i} ({ins.OpName}): {ins.Arguments.Length} arguments for the {e.Params.Count} parameters of {e.Name}";
            for (int j = 0; j < e.Params.Count; j++)
            {
                var p = e.Params[j];
                var kind = ins.Arguments[j].Kind;
                bool ok = p.Type switch
                {
                    "extent" => kind is ArgKind.Tokens or ArgKind.I32,
                    "i32" => kind is ArgKind.Tokens or ArgKind.I32,
                    "f32" => kind == ArgKind.F32,
                    _ => kind is ArgKind.Tensor or ArgKind.Buffer or ArgKind.None,
                };
                if (!ok) return $"instruction {i} ({ins.OpName}): argument {p.Name} of {e.Name} is {p.Type}, the plan gives {kind}";
            }
        }
        return null;
    }

    /// <summary>Writes the argument block of launch <paramref name="ins"/> for a step of <paramref name="nTokens"/>
    /// tokens; views resolve to <c>arenaBase[arena] + offset</c>. The plan was checked by <see cref="Verify"/>.</summary>
    public static void Pack(Plan plan, Instruction ins, ReadOnlySpan<ulong> arenaBase, int nTokens, Span<byte> block)
    {
        var e = KernelTable.All[(int)ins.KernelId];
        block[..e.ArgumentBytes].Clear();
        for (int j = 0; j < e.Params.Count; j++)
        {
            var p = e.Params[j];
            var a = ins.Arguments[j];
            var at = block[p.Offset..];
            switch (a.Kind)
            {
                case ArgKind.Tensor:
                    var t = plan.Tensors[(int)a.Value];
                    View(at, arenaBase[t.DeviceArena] + (ulong)t.DeviceOffset, t.Size / ElementBytes(p.Type));
                    break;
                case ArgKind.Buffer:
                    var b = plan.Buffers[(int)a.Value];
                    View(at, arenaBase[b.Arena] + (ulong)b.Offset, b.Size / ElementBytes(p.Type));
                    break;
                case ArgKind.None: View(at, 0, 0); break;
                case ArgKind.I32 or ArgKind.F32: BinaryPrimitives.WriteInt32LittleEndian(at, (int)a.Value); break;
                case ArgKind.Tokens: BinaryPrimitives.WriteInt32LittleEndian(at, checked((int)(a.Value * nTokens))); break;
            }
        }
    }

    /// <summary>Rewrites only the n_tokens-dependent arguments (kind tokens) of a packed block.</summary>
    public static void PatchTokens(Instruction ins, int nTokens, Span<byte> block)
    {
        var e = KernelTable.All[(int)ins.KernelId];
        for (int j = 0; j < e.Params.Count; j++)
            if (ins.Arguments[j].Kind == ArgKind.Tokens)
                BinaryPrimitives.WriteInt32LittleEndian(block[e.Params[j].Offset..], (int)(ins.Arguments[j].Value * nTokens));
    }

    /// <summary>Whether launch <paramref name="ins"/> can run over some rows (tokens) of a step alone
    /// (<see cref="PackRows"/>): a family whose output row t is computed from row t of its inputs only (rms_norm,
    /// quantize, the matmul's gemv), whose buffer arguments each hold <paramref name="batch"/> rows of whole elements.</summary>
    public static bool CanPackRows(Plan plan, Instruction ins, int batch)
    {
        var e = KernelTable.All[(int)ins.KernelId];
        if (e.Family is not ("rms_norm" or "quantize" or "gemv")) return false;
        for (int j = 0; j < e.Params.Count; j++)
        {
            if (ins.Arguments[j].Kind != ArgKind.Buffer) continue;
            long size = plan.Buffers[(int)ins.Arguments[j].Value].Size;
            if (size % batch != 0 || size / batch % ElementBytes(e.Params[j].Type) != 0) return false;
        }
        return true;
    }

    /// <summary><see cref="Pack"/> for rows <paramref name="firstRow"/> .. firstRow + rows − 1 of a step: n_tokens =
    /// <paramref name="rows"/>, and every buffer view (a buffer holds <paramref name="batch"/> rows) starts at row
    /// <paramref name="firstRow"/> and holds <paramref name="rows"/> rows; weights are whole. For launches
    /// <see cref="CanPackRows"/> allows.</summary>
    public static void PackRows(Plan plan, Instruction ins, ReadOnlySpan<ulong> arenaBase, int firstRow, int rows, int batch, Span<byte> block)
    {
        Pack(plan, ins, arenaBase, rows, block);
        var e = KernelTable.All[(int)ins.KernelId];
        for (int j = 0; j < e.Params.Count; j++)
        {
            if (ins.Arguments[j].Kind != ArgKind.Buffer) continue;
            var b = plan.Buffers[(int)ins.Arguments[j].Value];
            long rowBytes = b.Size / batch;
            View(block[e.Params[j].Offset..], arenaBase[b.Arena] + (ulong)b.Offset + (ulong)(firstRow * rowBytes),
                rows * rowBytes / ElementBytes(e.Params[j].Type));
        }
    }

    /// <summary>Whether launch <paramref name="ins"/> takes the plan's buffer <paramref name="name"/> as an argument.</summary>
    public static bool TakesBuffer(Plan plan, Instruction ins, string name) =>
        ins.Arguments.Any(a => a.Kind == ArgKind.Buffer && plan.Buffers[(int)a.Value].Name == name);

    /// <summary>Points every view of a packed block that the plan gives as buffer <paramref name="name"/> at
    /// <paramref name="address"/>, <paramref name="length"/> elements long.</summary>
    public static void Repoint(Plan plan, Instruction ins, string name, ulong address, long length, Span<byte> block)
    {
        var e = KernelTable.All[(int)ins.KernelId];
        for (int j = 0; j < e.Params.Count; j++)
            if (ins.Arguments[j] is { Kind: ArgKind.Buffer } a && plan.Buffers[(int)a.Value].Name == name)
                View(block[e.Params[j].Offset..], address, length);
    }

    private static void View(Span<byte> at, ulong address, long length)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(at, address);
        BinaryPrimitives.WriteInt64LittleEndian(at[8..], length);
    }

    /// <summary>Element size of a view parameter type (view&lt;u8&gt; 1, view&lt;f16&gt; 2, else 4).</summary>
    public static int ElementBytes(string type) => type switch { "view<u8>" => 1, "view<f16>" => 2, _ => 4 };
}
