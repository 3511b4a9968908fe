using System.Text;
using Engine.Plans.Model;

namespace Engine.Plans.PlanFile;

/// <summary>Writes a <see cref="Plan"/> exactly as docs/plan-format.md lays it out. Deterministic (same plan,
/// same bytes) and atomic: PATH.part is written and renamed, so a failure leaves no file under PATH.</summary>
public static class PlanWriter
{
    public static void Write(Plan plan, string path)
    {
        var bytes = ToBytes(plan);
        string part = path + ".part";
        try
        {
            File.WriteAllBytes(part, bytes);
            File.Move(part, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(part); } catch (IOException) { }
            throw new PlanException($"{path}: cannot write the plan: {e.Message}");
        }
    }

    public static byte[] ToBytes(Plan p)
    {
        var sections = new (SectionKind Kind, byte[] Body)[]
        {
            (SectionKind.Fingerprints, Section(w => Fingerprints(w, p.Fingerprints))),
            (SectionKind.Inputs, Section(w => Inputs(w, p.Inputs))),
            (SectionKind.ModelConfig, Section(w => Config(w, p.Config))),
            (SectionKind.Tokenizer, Section(w => Tokenizer(w, p.Tokenizer))),
            (SectionKind.Tensors, Section(w => List(w, p.Tensors, Tensor))),
            (SectionKind.Layers, Section(w => List(w, p.Layers, Layer))),
            (SectionKind.Arenas, Section(w => { List(w, p.Arenas, Arena); List(w, p.Buffers, Buffer); })),
            (SectionKind.Kernels, Section(w => List(w, p.Kernels, (w2, k) => { w2.Write(k.Id); Str(w2, k.Family); w2.Write(k.WeightType); Str(w2, k.Entry); w2.Write(k.ArgumentBytes); }))),
            (SectionKind.Instructions, Section(w => List(w, p.Instructions, Instruction))),
            (SectionKind.IoLists, Section(w => List(w, p.IoCommands, (w2, c) => { w2.Write(c.Lba); w2.Write(c.BlockCount); w2.Write(0u); w2.Write(c.StagingOffset); }))),
            (SectionKind.Ptx, Section(w => List(w, p.Ptx, (w2, m) => { w2.Write(m.Sm); Str(w2, m.Name); w2.Write((uint)m.Text.Length); w2.Write(m.Text); }))),
            (SectionKind.Prediction, Section(w => Prediction(w, p.Prediction))),
        };
        int headerLength = 24 + 24 * sections.Length;
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true);
        w.Write(PlanFormat.Magic);
        w.Write(PlanFormat.Version);
        w.Write((uint)headerLength);
        w.Write((uint)sections.Length);
        w.Write(0u);
        long offset = Align(headerLength);
        var offsets = new long[sections.Length];
        for (int i = 0; i < sections.Length; i++)
        {
            offsets[i] = offset;
            w.Write((uint)sections[i].Kind);
            w.Write(0u);
            w.Write((ulong)offset);
            w.Write((ulong)sections[i].Body.Length);
            offset = Align(offset + sections[i].Body.Length);
        }
        for (int i = 0; i < sections.Length; i++)
        {
            w.Flush();
            ms.SetLength(offsets[i]);
            ms.Position = offsets[i];
            w.Write(sections[i].Body);
        }
        w.Flush();
        ms.SetLength(offset);
        return ms.ToArray();
    }

    private static long Align(long x) => (x + PlanFormat.SectionAlignment - 1) / PlanFormat.SectionAlignment * PlanFormat.SectionAlignment;

    private static byte[] Section(Action<BinaryWriter> body)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) body(w);
        return ms.ToArray();
    }

    internal static void Str(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        if (b.Length > PlanFormat.MaxString) throw new PlanException($"plan: a string of {b.Length} bytes exceeds the format's 1 MiB limit");
        w.Write((uint)b.Length);
        w.Write(b);
    }

    private static void List<T>(BinaryWriter w, IReadOnlyList<T> items, Action<BinaryWriter, T> one)
    {
        w.Write((uint)items.Count);
        foreach (var x in items) one(w, x);
    }

    private static void Fingerprints(BinaryWriter w, Fingerprints f)
    {
        Str(w, f.EngineVersion); w.Write((ulong)f.ModelFileSize); w.Write(f.ModelHeaderSha256); w.Write((ulong)f.ModelDataOffset);
        Str(w, f.ModelFileName); Str(w, f.HwProfile); Str(w, f.HwBackend); Str(w, f.GpuName); w.Write((uint)f.GpuSm);
        w.Write((ulong)f.GpuVramBytes); w.Write((uint)f.PcieGen); w.Write((uint)f.PcieWidth); Str(w, f.Driver); Str(w, f.ModelPath);
    }

    private static void Inputs(BinaryWriter w, PlanInputs i)
    {
        w.Write(i.Ctx); w.Write(i.Batch); w.Write(i.Slots); w.Write((ulong)i.VramBudget); w.Write((ulong)i.RamBudget);
        w.Write((ulong)i.VramMargin); w.Write((ulong)i.RamMargin); w.Write((byte)i.NvmeMode); Str(w, i.NvmeDevice);
        w.Write((ulong)i.LbaBase); w.Write((uint)i.NvmeBlockSize); w.Write((uint)i.NvmeMaxTransfer);
        w.Write(i.H2dBandwidth); w.Write(i.DeviceBandwidth); w.Write(i.NvmeBandwidth); w.Write((byte)i.Activations);
    }

    private static void Config(BinaryWriter w, ModelConfig c)
    {
        Str(w, c.Architecture); Str(w, c.Name);
        foreach (int v in new[] { c.EmbeddingLength, c.LayerCount, c.FeedForwardLength, c.HeadCount, c.HeadCountKv, c.HeadDim, c.VocabSize, c.TrainedContext, c.RopeDimensions })
            w.Write(v);
        w.Write(c.RmsEpsilon); w.Write(c.RopeFreqBase); w.Write(c.HasRopeFreqs); w.Write(c.TiedOutput); w.Write(c.FileType);
    }

    private static void Tokenizer(BinaryWriter w, TokenizerData t)
    {
        Str(w, t.Model); Str(w, t.Pre);
        List(w, t.Tokens, Str);
        w.Write(t.Scores != null); if (t.Scores != null) List(w, t.Scores, (w2, x) => w2.Write(x));
        w.Write(t.TokenTypes != null); if (t.TokenTypes != null) List(w, t.TokenTypes, (w2, x) => w2.Write(x));
        w.Write(t.Merges != null); if (t.Merges != null) List(w, t.Merges, Str);
        foreach (int id in new[] { t.BosId, t.EosId, t.EotId, t.EomId, t.UnknownId, t.PaddingId }) w.Write(id);
        w.Write(t.AddBos); w.Write(t.AddEos); w.Write(t.AddSpacePrefix);
        w.Write(t.ChatTemplate != null); if (t.ChatTemplate != null) Str(w, t.ChatTemplate);
    }

    private static void Tensor(BinaryWriter w, PlanTensor t)
    {
        Str(w, t.Name); w.Write((uint)t.Type); w.Write((uint)t.Dims.Length);
        foreach (long d in t.Dims) w.Write((ulong)d);
        w.Write((ulong)t.FileOffset); w.Write((ulong)t.Size); w.Write(t.Layer); w.Write((byte)t.Tier);
        w.Write(t.HomeArena); w.Write((ulong)t.HomeOffset); w.Write(t.DeviceArena); w.Write((ulong)t.DeviceOffset);
    }

    private static void Layer(BinaryWriter w, PlanLayer l)
    {
        w.Write((byte)l.Tier); w.Write(l.StreamIndex); w.Write(l.Slot); w.Write((ulong)l.ImageFileOffset); w.Write((ulong)l.ImageSize);
        w.Write((ulong)l.HomeOffset); w.Write((ulong)l.SlotOffset); w.Write((uint)l.IoFirst); w.Write((uint)l.IoCount); Str(w, l.Reason);
    }

    private static void Arena(BinaryWriter w, PlanArena a)
    {
        Str(w, a.Name); w.Write((byte)a.Kind); w.Write((ulong)a.Size); w.Write((ulong)a.Budget); w.Write((uint)a.Alignment);
    }

    private static void Buffer(BinaryWriter w, PlanBuffer b)
    {
        Str(w, b.Name); w.Write((byte)b.Role); w.Write(b.Layer); w.Write(b.Arena); w.Write((ulong)b.Offset); w.Write((ulong)b.Size);
        w.Write(b.FirstUse); w.Write(b.LastUse);
    }

    private static void Instruction(BinaryWriter w, Instruction i)
    {
        w.Write((byte)i.Opcode); w.Write(i.Layer);
        if (i.Opcode != Opcode.Launch) return;
        w.Write(i.KernelId); w.Write(i.BatchKernelId); w.Write(i.ShortKernelId); Str(w, i.OpName);
        var s = i.Shape;
        foreach (uint v in new[] { s.GridX, s.GridY, s.GridZ, s.BlockX, s.BlockY, s.BlockZ, s.SharedBytes }) w.Write(v);
        List(w, i.Arguments, (w2, a) => { w2.Write((byte)a.Kind); w2.Write(a.Value); });
    }

    private static void Prediction(BinaryWriter w, Prediction p)
    {
        w.Write((ulong)p.BytesResident); w.Write((ulong)p.BytesPinned); w.Write((ulong)p.BytesNvme);
        w.Write(p.TimeResident); w.Write(p.TimePinned); w.Write(p.TimeNvme); w.Write(p.TokenSeconds); w.Write(p.TokensPerSecond);
    }
}
