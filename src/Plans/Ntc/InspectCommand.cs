using System.Globalization;
using System.Text;
using System.Text.Json;
using Engine.Plans.Gguf;
using Engine.Plans.Model;

namespace Engine.Plans.Cli;

/// <summary><c>ntc inspect MODEL.gguf [--json]</c>: what the planner sees in a GGUF file. Hyper-parameters come from
/// <see cref="ModelConfig.FromGguf"/> and the tokenizer from <see cref="TokenizerData.FromGguf"/>, so this shows
/// exactly what a plan would be built from. Vocabulary-only files (no tensors) inspect too.</summary>
public static class InspectCommand
{
    public static int Run(string[] args)
    {
        var a = Args.Parse(args, flags: ["--json"]);
        string path = a.Single("MODEL.gguf");
        using var f = GgufFile.Open(path);
        var r = Inspection.Of(f);
        Console.Out.Write(a.Flag("--json") ? Json(r) : Text(r));
        return 0;
    }

    /// <summary>Everything inspect reports, read once from the file.</summary>
    private sealed record Inspection(
        string File, long FileSize, uint Version, uint Alignment, long DataOffset, int MetadataKeys,
        string Architecture, string Name, long FileType,
        ModelConfig? Config, string? ConfigNote,
        string? RopeScalingType, double? RopeScalingFactor, long? RopeScalingOrigContext,
        TokenizerData? Tokenizer,
        int TensorCount, SortedDictionary<string, int> TensorTypes, long[] LayerBytes, long OtherBytes, long TotalBytes)
    {
        public static Inspection Of(GgufFile f)
        {
            string arch = f.GetStringOrNull(GgufKeys.Architecture) ?? "";
            ModelConfig? cfg = null;
            string? note = null;
            if (arch.Length == 0) note = $"{GgufKeys.Architecture} is missing";
            else if (Array.IndexOf(ModelConfig.SupportedArchitectures, arch) < 0)
                note = $"architecture {arch} is not supported (supported: {string.Join(", ", ModelConfig.SupportedArchitectures)})";
            else cfg = ModelConfig.FromGguf(f);

            var types = new SortedDictionary<string, int>(StringComparer.Ordinal);
            int layers = cfg?.LayerCount ?? 0;
            foreach (var t in f.Tensors) layers = Math.Max(layers, TensorNames.LayerOf(t.Name) + 1);
            var layerBytes = new long[layers];
            long other = 0;
            foreach (var t in f.Tensors)
            {
                string type = GgmlTypeInfo.Name(t.Type);
                types[type] = types.GetValueOrDefault(type) + 1;
                int l = TensorNames.LayerOf(t.Name);
                if (l >= 0) layerBytes[l] += t.ByteSize; else other += t.ByteSize;
            }
            if (f.Tensors.Count == 0) layerBytes = [];

            return new Inspection(
                Path.GetFileName(f.Path), f.FileSize, f.Version, f.Alignment, f.DataOffset, f.MetadataKeys.Count,
                arch, f.GetStringOrNull(GgufKeys.Name) ?? "", f.GetIntOr(GgufKeys.FileType, -1),
                cfg, note,
                arch.Length > 0 ? f.GetStringOrNull(GgufKeys.RopeScalingType(arch)) : null,
                arch.Length > 0 && f.Has(GgufKeys.RopeScalingFactor(arch)) ? f.GetFloat(GgufKeys.RopeScalingFactor(arch)) : null,
                arch.Length > 0 && f.Has(GgufKeys.RopeScalingOrigContext(arch)) ? f.GetInt(GgufKeys.RopeScalingOrigContext(arch)) : null,
                f.Has(GgufKeys.TokenizerModel) ? TokenizerData.FromGguf(f) : null,
                f.Tensors.Count, types, layerBytes, other, layerBytes.Sum() + other);
        }
    }

    private static string Text(Inspection r)
    {
        var w = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        void Row(string label, object value) => w.WriteLine($"  {label,-22}{Str(value)}");
        w.WriteLine($"file: {r.File}, {Bytes(r.FileSize)}");
        w.WriteLine($"gguf: version {r.Version}, alignment {r.Alignment}, {(r.TensorCount == 0 ? "no data section" : $"data offset {r.DataOffset}")}, {r.MetadataKeys} metadata keys");
        w.WriteLine($"architecture: {(r.Architecture.Length > 0 ? r.Architecture : "(none)")}");
        w.WriteLine($"name: {(r.Name.Length > 0 ? r.Name : "(none)")}");
        w.WriteLine($"file type: {(r.FileType < 0 ? "(not given)" : $"{r.FileType} ({LlamaFileType.Name(r.FileType)})")}");

        if (r.Config is { } c)
        {
            w.WriteLine("hyper-parameters:");
            Row("embedding length", c.EmbeddingLength);
            Row("layers", c.LayerCount);
            Row("feed-forward length", c.FeedForwardLength);
            Row("heads", c.HeadCount);
            Row("kv heads", c.HeadCountKv);
            Row("head dim", c.HeadDim);
            Row("vocab size", c.VocabSize);
            Row("trained context", c.TrainedContext);
            Row("rms epsilon", c.RmsEpsilon);
            Row("output", r.TensorCount == 0 ? "(no tensors)" : c.TiedOutput ? "tied to token_embd" : "separate");
            w.WriteLine("rope:");
            Row("freq base", c.RopeFreqBase);
            Row("dimensions", c.RopeDimensions);
            Row("scaling", RopeScaling(r));
            Row(TensorNames.RopeFreqs, r.TensorCount == 0 ? "(no tensors)" : c.HasRopeFreqs ? "present" : "absent");
        }
        else w.WriteLine($"hyper-parameters: not read: {r.ConfigNote}");

        if (r.Tokenizer is { } t)
        {
            w.WriteLine("tokenizer:");
            Row("model", t.Model);
            Row("pre", t.Pre);
            Row("tokens", t.Tokens.Length);
            Row("merges", t.Merges?.Length ?? 0);
            Row("bos / eos / eot", $"{t.BosId} / {t.EosId} / {t.EotId}");
            Row("unk / pad", $"{t.UnknownId} / {t.PaddingId}");
            Row("add_bos", t.AddBos);
        }
        else w.WriteLine("tokenizer: none");

        if (r.TensorCount == 0)
        {
            w.WriteLine("tensors: none (vocabulary-only file)");
            return w.ToString();
        }
        w.WriteLine($"tensors: {r.TensorCount}");
        foreach (var (type, n) in r.TensorTypes) Row(type, n);
        w.WriteLine("bytes:");
        for (int l = 0; l < r.LayerBytes.Length; l++) Row($"blk.{l}", Bytes(r.LayerBytes[l]));
        Row("outside layers", Bytes(r.OtherBytes));
        Row("total", Bytes(r.TotalBytes));
        return w.ToString();
    }

    private static string Json(Inspection r)
    {
        var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            j.WriteStartObject();
            j.WriteString("file", r.File);
            j.WriteNumber("file_size", r.FileSize);
            j.WriteStartObject("gguf");
            j.WriteNumber("version", r.Version);
            j.WriteNumber("alignment", r.Alignment);
            if (r.TensorCount == 0) j.WriteNull("data_offset"); else j.WriteNumber("data_offset", r.DataOffset);
            j.WriteNumber("metadata_keys", r.MetadataKeys);
            j.WriteEndObject();
            j.WriteString("architecture", r.Architecture);
            j.WriteString("name", r.Name);
            if (r.FileType < 0) j.WriteNull("file_type");
            else
            {
                j.WriteStartObject("file_type");
                j.WriteNumber("id", r.FileType);
                j.WriteString("name", LlamaFileType.Name(r.FileType));
                j.WriteEndObject();
            }
            if (r.Config is { } c)
            {
                j.WriteStartObject("hyper_parameters");
                j.WriteNumber("embedding_length", c.EmbeddingLength);
                j.WriteNumber("layers", c.LayerCount);
                j.WriteNumber("feed_forward_length", c.FeedForwardLength);
                j.WriteNumber("heads", c.HeadCount);
                j.WriteNumber("kv_heads", c.HeadCountKv);
                j.WriteNumber("head_dim", c.HeadDim);
                j.WriteNumber("vocab_size", c.VocabSize);
                j.WriteNumber("trained_context", c.TrainedContext);
                j.WriteNumber("rms_epsilon", c.RmsEpsilon);
                if (r.TensorCount == 0) j.WriteNull("tied_output"); else j.WriteBoolean("tied_output", c.TiedOutput);
                j.WriteEndObject();
                j.WriteStartObject("rope");
                j.WriteNumber("freq_base", c.RopeFreqBase);
                j.WriteNumber("dimensions", c.RopeDimensions);
                if (r.RopeScalingType is { } st) j.WriteString("scaling_type", st); else j.WriteNull("scaling_type");
                if (r.RopeScalingFactor is { } sf) j.WriteNumber("scaling_factor", sf); else j.WriteNull("scaling_factor");
                if (r.RopeScalingOrigContext is { } so) j.WriteNumber("scaling_original_context", so); else j.WriteNull("scaling_original_context");
                if (r.TensorCount == 0) j.WriteNull("rope_freqs"); else j.WriteBoolean("rope_freqs", c.HasRopeFreqs);
                j.WriteEndObject();
            }
            else
            {
                j.WriteNull("hyper_parameters");
                j.WriteNull("rope");
                j.WriteString("hyper_parameters_note", r.ConfigNote);
            }
            if (r.Tokenizer is { } t)
            {
                j.WriteStartObject("tokenizer");
                j.WriteString("model", t.Model);
                j.WriteString("pre", t.Pre);
                j.WriteNumber("tokens", t.Tokens.Length);
                j.WriteNumber("merges", t.Merges?.Length ?? 0);
                j.WriteNumber("bos_id", t.BosId);
                j.WriteNumber("eos_id", t.EosId);
                j.WriteNumber("eot_id", t.EotId);
                j.WriteNumber("unk_id", t.UnknownId);
                j.WriteNumber("pad_id", t.PaddingId);
                j.WriteBoolean("add_bos", t.AddBos);
                j.WriteEndObject();
            }
            else j.WriteNull("tokenizer");
            j.WriteNumber("tensor_count", r.TensorCount);
            j.WriteStartObject("tensor_types");
            foreach (var (type, n) in r.TensorTypes) j.WriteNumber(type, n);
            j.WriteEndObject();
            j.WriteStartArray("layer_bytes");
            foreach (long b in r.LayerBytes) j.WriteNumberValue(b);
            j.WriteEndArray();
            j.WriteNumber("outside_layer_bytes", r.OtherBytes);
            j.WriteNumber("total_bytes", r.TotalBytes);
            j.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()).Replace("\r\n", "\n") + "\n";
    }

    private static string RopeScaling(Inspection r)
    {
        if (r.RopeScalingType == null && r.RopeScalingFactor == null && r.RopeScalingOrigContext == null) return "none";
        var parts = new List<string> { r.RopeScalingType ?? "(type not given)" };
        if (r.RopeScalingFactor is { } f) parts.Add("factor " + Str(f));
        if (r.RopeScalingOrigContext is { } o) parts.Add("original context " + o);
        return string.Join(", ", parts);
    }

    private static string Str(object v) => v switch
    {
        bool b => b ? "true" : "false",
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    /// <summary>"1185376 bytes (1.13 MiB)": exact first, binary units for the eye.</summary>
    private static string Bytes(long n)
    {
        string[] units = ["KiB", "MiB", "GiB", "TiB"];
        if (n < 1024) return $"{n} bytes";
        double v = n;
        int u = -1;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return string.Create(CultureInfo.InvariantCulture, $"{n} bytes ({v:0.##} {units[u]})");
    }
}
