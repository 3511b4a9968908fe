using System.Globalization;
using System.Text;
using System.Text.Json;
using Engine.Plans.Hardware;

namespace Engine.Plans.PlanFile;

/// <summary><c>ntc explain</c>: the plan as deterministic text (snapshot-tested) or JSON. Only plan contents are
/// shown, in a fixed order with invariant formatting: same plan, same text.</summary>
public static class PlanExplainer
{
    private static string B(long b) => ByteSize.Format(b);
    private static string R(double r) => ByteSize.Rate(r);
    private static string N(double d, string f = "0.00") => d.ToString(f, CultureInfo.InvariantCulture);
    private static string Hex(byte[] b) => Convert.ToHexStringLower(b);

    public static string Text(Plan p)
    {
        var s = new StringBuilder();
        void L(string line) => s.Append(line).Append('\n');
        var f = p.Fingerprints; var c = p.Config; var i = p.Inputs;
        L($"plan format {PlanFormat.Version}, engine {f.EngineVersion}");
        L($"model: {(c.Name.Length > 0 ? c.Name : "(unnamed)")} ({f.ModelFileName}, {B(f.ModelFileSize)}, header sha256 {Hex(f.ModelHeaderSha256)[..16]})");
        L($"  {c.Architecture}: n_layer {c.LayerCount}, n_embd {c.EmbeddingLength}, n_ff {c.FeedForwardLength}, heads {c.HeadCount}/{c.HeadCountKv} x {c.HeadDim}, vocab {c.VocabSize}, ctx_train {c.TrainedContext}, rope base {N(c.RopeFreqBase, "0")}{(c.HasRopeFreqs ? " + rope_freqs" : "")}{(c.TiedOutput ? ", tied output" : "")}");
        L($"  tensor types: {string.Join(", ", p.Tensors.GroupBy(t => t.Type).OrderBy(g => g.Key).Select(g => $"{g.Key} x{g.Count()}"))}");
        L($"  tokenizer: {p.Tokenizer.Model}/{p.Tokenizer.Pre}, {p.Tokenizer.Tokens.Length} tokens, bos {p.Tokenizer.BosId}, eos {p.Tokenizer.EosId}");
        L(f.HwBackend == "cpu"
            ? $"hardware: {f.HwProfile} (cpu backend: the device arena is host memory)"
            : $"hardware: {f.HwProfile} ({f.GpuName}, sm_{f.GpuSm}, {B(f.GpuVramBytes)} VRAM, PCIe gen {f.PcieGen} x{f.PcieWidth}{(f.Driver.Length > 0 ? ", driver " + f.Driver : "")})");
        string nvme = i.NvmeMode switch
        {
            NvmeMode.File => $"NVMe {R(i.NvmeBandwidth)} (the GGUF file, O_DIRECT, 4 KiB LBAs, max transfer {B(i.NvmeMaxTransfer)})",
            NvmeMode.Device => $"NVMe {R(i.NvmeBandwidth)} ({i.NvmeDevice} from LBA {i.LbaBase}, {i.NvmeBlockSize}-byte blocks, max transfer {B(i.NvmeMaxTransfer)})",
            _ => "no NVMe source",
        };
        L($"  cost model: device {R(i.DeviceBandwidth)}{(f.HwBackend == "cpu" ? "" : $", host->device {R(i.H2dBandwidth)}")}, {nvme}");
        L(f.HwBackend == "cpu"
            ? $"budgets: RAM {B(i.RamBudget)} (margin {B(i.RamMargin)})"
            : $"budgets: VRAM {B(i.VramBudget)} (margin {B(i.VramMargin)}), RAM {B(i.RamBudget)} (margin {B(i.RamMargin)})");
        L($"context: {i.Ctx} tokens, batch {i.Batch}, {(i.Slots == 0 ? "no streaming slots" : $"{i.Slots} streaming slot(s)")}");
        L(i.Activations == ActivationPrecision.F32
            ? "activations: f32 (every matmul reads f32 activations: the quantized formats' f32act kernels, no batch GEMM)"
            : "activations: int8 (the quantized formats' matmuls read 8-bit activations, as llama.cpp; --activations f32 to agree across backends)");

        var kv = p.Buffers.Where(b => b.Role == BufferRole.KvCache).ToList();
        var work = p.Buffers.Where(b => b.Role is BufferRole.Activation or BufferRole.Input or BufferRole.Output).ToList();
        long workSize = work.Count == 0 ? 0 : work.Max(b => b.Offset + b.Size);
        var globals = p.Tensors.Where(t => t.Layer < 0).ToList();
        var slots = p.Buffers.Where(b => b.Role == BufferRole.Slot).ToList();
        // Per-layer persistent buffers by name: the f16 K and V caches, attention's i32 range counters.
        string perLayer = string.Join(", ", kv.GroupBy(b => b.Name).Select(g => $"{g.Key} {g.Count()} x {B(g.First().Size)}"));
        L($"reserved before layers: workspace {B(workSize)}, KV cache {B(kv.Sum(b => b.Size))} ({(kv.Count == 0 ? "none" : perLayer)}), " +
          $"globals {B(globals.Where(t => t.Tier == Tier.A).Sum(t => t.Size))} on device + {B(globals.Where(t => t.Tier == Tier.H).Sum(t => t.Size))} host-resident, " +
          $"slots {slots.Count} x {B(slots.Select(b => b.Size).DefaultIfEmpty(0).Max())}, staging {B(p.Arenas[Arenas.Staging].Size)}");
        foreach (var t in globals)
            L($"  global {t.Name} {t.Type} [{string.Join(", ", t.Dims)}] {B(t.Size)}: tier {t.Tier} {p.Arenas[t.DeviceArena].Name}@{t.DeviceOffset}");

        int nA = p.Layers.Count(l => l.Tier == Tier.A), nB = p.Layers.Count(l => l.Tier == Tier.B), nC = p.Layers.Count(l => l.Tier == Tier.C);
        L($"layers: {nA} A (device) + {nB} B (pinned RAM) + {nC} C (NVMe)");
        for (int a = 0; a < p.Layers.Count;)
        {
            int b = a;
            while (b + 1 < p.Layers.Count && p.Layers[b + 1].Tier == p.Layers[a].Tier && p.Layers[b + 1].Reason == p.Layers[a].Reason
                   && p.Layers[b + 1].ImageSize == p.Layers[a].ImageSize) b++;
            string range = a == b ? $"{a}" : $"{a}-{b}";
            var types = string.Join("/", p.Tensors.Where(t => t.Layer == a && t.Dims.Length > 1).Select(t => t.Type).Distinct().Order());
            L($"  {range,-7} {p.Layers[a].Tier}  image {B(p.Layers[a].ImageSize)} {types}: {p.Layers[a].Reason}");
            a = b + 1;
        }

        L("arenas:");
        foreach (var a in p.Arenas) L($"  {a.Name,-8} {a.Kind,-13} {B(a.Size),12} of budget {B(a.Budget)}");
        L("buffers:");
        foreach (var b in work.Concat(slots).Concat(p.Buffers.Where(b => b.Role == BufferRole.StagingSlot)))
            L($"  {b.Name,-12} {b.Role,-11} {p.Arenas[b.Arena].Name}@{b.Offset,-12} {B(b.Size),10}  live {(b.FirstUse < 0 ? "whole run" : $"ops {b.FirstUse}-{b.LastUse}")}");
        foreach (var g in kv.GroupBy(b => b.Name))
            L($"  {g.Key,-12} {"KvCache",-11} {g.Count()} buffers of {B(g.First().Size)} at device@{g.Min(b => b.Offset)}..{g.Max(b => b.Offset + b.Size)}");

        var launches = p.Instructions.Where(x => x.Opcode == Opcode.Launch).ToList();
        L($"instructions: {p.Instructions.Count} per token ({launches.Count} launches, {p.Instructions.Count(x => x.Opcode == Opcode.Prefetch)} prefetches, {p.Instructions.Count(x => x.Opcode == Opcode.Wait)} waits)");
        foreach (var k in p.Kernels)
            L($"  kernel {k.Id,5} {k.Entry,-22} x{launches.Count(x => x.KernelId == k.Id || x.BatchKernelId == k.Id || x.ShortKernelId == k.Id)}{(launches.Any(x => x.BatchKernelId == k.Id) ? " (batch)" : launches.Any(x => x.ShortKernelId == k.Id) ? " (short)" : "")}");
        L("  layer 0 program:");
        foreach (var x in p.Instructions.Where(x => x.Layer == 0))
            L("    " + Describe(p, x));

        L($"io lists: {p.IoCommands.Count} commands{(nC > 0 ? $" for {nC} tier-C layers" : "")}");
        foreach (var (l, idx) in p.Layers.Select((l, idx) => (l, idx)).Where(x => x.l.Tier == Tier.C))
        {
            var first = p.IoCommands[l.IoFirst]; var last = p.IoCommands[l.IoFirst + l.IoCount - 1];
            L($"  layer {idx}: {l.IoCount} commands, LBA {first.Lba}..{last.Lba + last.BlockCount - 1}, {B(l.ImageSize)} -> staging@{l.HomeOffset}");
        }
        L($"ptx: {p.Ptx.Count} module(s){(p.Ptx.Count == 0 ? "" : $" for sm_{p.Ptx[0].Sm}: " + string.Join(", ", p.Ptx.Select(m => m.Name)))}");
        var pr = p.Prediction;
        L("prediction per token:");
        L($"  resident {B(pr.BytesResident)} in {N(pr.TimeResident * 1e3)} ms; pinned {B(pr.BytesPinned)} in {N(pr.TimePinned * 1e3)} ms; NVMe {B(pr.BytesNvme)} in {N(pr.TimeNvme * 1e3)} ms");
        L($"  {N(pr.TokenSeconds * 1e3)} ms/token = {N(pr.TokensPerSecond)} tok/s");
        return s.ToString();
    }

    private static string Describe(Plan p, Instruction x)
    {
        if (x.Opcode != Opcode.Launch) return $"{x.Opcode.ToString().ToLowerInvariant()} layer {x.Layer}";
        var k = p.Kernels.First(k => k.Id == x.KernelId);
        var args = x.Arguments.Select(a => a.Kind switch
        {
            ArgKind.Tensor => p.Tensors[(int)a.Value].Name,
            ArgKind.Buffer => p.Buffers[(int)a.Value].Name + (p.Buffers[(int)a.Value].Layer >= 0 ? "." + p.Buffers[(int)a.Value].Layer : ""),
            ArgKind.I32 => a.Value.ToString(CultureInfo.InvariantCulture),
            ArgKind.F32 => BitConverter.Int32BitsToSingle((int)a.Value).ToString("G6", CultureInfo.InvariantCulture) + "f",
            ArgKind.Tokens => a.Value == 1 ? "n_tokens" : a.Value.ToString(CultureInfo.InvariantCulture) + "·n_tokens",
            _ => "-",
        });
        var s = x.Shape;
        string grid = s.GridY == 1 && s.GridZ == 1 ? $"{s.GridX}" : s.GridZ == 1 ? $"({s.GridX}, {s.GridY})" : $"({s.GridX}, {s.GridY}, {s.GridZ})";
        string batch = (x.HasBatchKernel ? $" batch {p.Kernels.First(k => k.Id == x.BatchKernelId).Entry}" : "")
            + (x.HasShortKernel ? $" short {p.Kernels.First(k => k.Id == x.ShortKernelId).Entry}" : "");
        return $"{x.OpName,-11} {k.Entry,-16} <<<{grid}, {s.BlockX}>>> ({string.Join(", ", args)}){batch}";
    }

    public static string Json(Plan p)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            var f = p.Fingerprints; var i = p.Inputs; var c = p.Config;
            w.WriteStartObject();
            w.WriteNumber("format_version", PlanFormat.Version);
            w.WriteStartObject("fingerprints");
            w.WriteString("engine_version", f.EngineVersion); w.WriteNumber("model_file_size", f.ModelFileSize);
            w.WriteString("model_header_sha256", Hex(f.ModelHeaderSha256)); w.WriteString("model_file_name", f.ModelFileName); w.WriteString("model_path", f.ModelPath);
            w.WriteString("hw_profile", f.HwProfile); w.WriteString("backend", f.HwBackend); w.WriteString("gpu_name", f.GpuName);
            w.WriteNumber("gpu_sm", f.GpuSm); w.WriteNumber("gpu_vram_bytes", f.GpuVramBytes); w.WriteNumber("pcie_gen", f.PcieGen);
            w.WriteNumber("pcie_width", f.PcieWidth); w.WriteString("driver", f.Driver);
            w.WriteEndObject();
            w.WriteStartObject("inputs");
            w.WriteNumber("n_ctx", i.Ctx); w.WriteNumber("n_batch", i.Batch); w.WriteNumber("slots", i.Slots);
            w.WriteNumber("vram_budget", i.VramBudget); w.WriteNumber("ram_budget", i.RamBudget);
            w.WriteString("nvme_mode", i.NvmeMode.ToString().ToLowerInvariant()); w.WriteNumber("lba_base", i.LbaBase);
            w.WriteNumber("h2d_bw", i.H2dBandwidth); w.WriteNumber("device_bw", i.DeviceBandwidth); w.WriteNumber("nvme_bw", i.NvmeBandwidth);
            w.WriteString("activations", i.Activations.ToString().ToLowerInvariant());
            w.WriteEndObject();
            w.WriteStartObject("model");
            w.WriteString("architecture", c.Architecture); w.WriteNumber("n_layer", c.LayerCount); w.WriteNumber("n_embd", c.EmbeddingLength);
            w.WriteNumber("n_ff", c.FeedForwardLength); w.WriteNumber("n_head", c.HeadCount); w.WriteNumber("n_head_kv", c.HeadCountKv);
            w.WriteNumber("n_vocab", c.VocabSize);
            w.WriteEndObject();
            w.WriteStartArray("layers");
            foreach (var l in p.Layers)
            {
                w.WriteStartObject();
                w.WriteString("tier", l.Tier.ToString()); w.WriteNumber("slot", l.Slot); w.WriteNumber("image_file_offset", l.ImageFileOffset);
                w.WriteNumber("image_size", l.ImageSize); w.WriteNumber("io_count", l.IoCount); w.WriteString("reason", l.Reason);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("arenas");
            foreach (var a in p.Arenas)
            {
                w.WriteStartObject(); w.WriteString("name", a.Name); w.WriteString("kind", a.Kind.ToString()); w.WriteNumber("size", a.Size); w.WriteNumber("budget", a.Budget); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("tensors");
            foreach (var t in p.Tensors)
            {
                w.WriteStartObject(); w.WriteString("name", t.Name); w.WriteString("type", t.Type.ToString()); w.WriteString("tier", t.Tier.ToString());
                w.WriteNumber("size", t.Size); w.WriteString("arena", p.Arenas[t.DeviceArena].Name); w.WriteNumber("offset", t.DeviceOffset); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("buffers");
            foreach (var b in p.Buffers)
            {
                w.WriteStartObject(); w.WriteString("name", b.Name); w.WriteString("role", b.Role.ToString()); w.WriteNumber("layer", b.Layer);
                w.WriteString("arena", p.Arenas[b.Arena].Name); w.WriteNumber("offset", b.Offset); w.WriteNumber("size", b.Size);
                w.WriteNumber("first_use", b.FirstUse); w.WriteNumber("last_use", b.LastUse); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("kernels");
            foreach (var k in p.Kernels) { w.WriteStartObject(); w.WriteNumber("id", k.Id); w.WriteString("entry", k.Entry); w.WriteEndObject(); }
            w.WriteEndArray();
            w.WriteNumber("instructions", p.Instructions.Count);
            w.WriteStartArray("io_commands");
            foreach (var cmd in p.IoCommands) { w.WriteStartArray(); w.WriteNumberValue(cmd.Lba); w.WriteNumberValue(cmd.BlockCount); w.WriteNumberValue(cmd.StagingOffset); w.WriteEndArray(); }
            w.WriteEndArray();
            var pr = p.Prediction;
            w.WriteStartObject("prediction");
            w.WriteNumber("bytes_resident", pr.BytesResident); w.WriteNumber("bytes_pinned", pr.BytesPinned); w.WriteNumber("bytes_nvme", pr.BytesNvme);
            w.WriteNumber("token_seconds", pr.TokenSeconds); w.WriteNumber("tokens_per_second", pr.TokensPerSecond);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }
}
