using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Hardware;

/// <summary>Resolves <c>--hw NAME|FILE.json|auto</c>: a shipped profile (embedded JSON), a profile file, or the
/// probed machine. JSON is read with <see cref="JsonDocument"/> (no reflection serializer: NativeAOT-safe).</summary>
public static class HardwareProfiles
{
    public static readonly string[] Shipped = ["cpu-only", "h100-80g", "rtx3090-48g", "rtx4090-64g"];

    public static HardwareProfile Resolve(string spec, string? modelPath = null)
    {
        if (spec == "auto") return HardwareProbe.Probe(modelPath);
        if (Array.IndexOf(Shipped, spec) >= 0)
        {
            using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("Engine.Plans.Hardware.Profiles." + spec + ".json")
                ?? throw new PlanException($"--hw {spec}: shipped profile missing from the build");
            using var r = new StreamReader(s);
            return Parse(r.ReadToEnd(), spec + ".json");
        }
        if (spec.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            string text;
            try { text = File.ReadAllText(spec); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new PlanException($"--hw {spec}: cannot read the profile: {e.Message}");
            }
            return Parse(text, spec);
        }
        throw new PlanException($"--hw {spec}: unknown profile (shipped: {string.Join(", ", Shipped)}; or a FILE.json, or auto)");
    }

    /// <summary>Parses a profile. Sizes are strings with a unit ("24GiB") or byte counts; rates are GB/s (10^9).</summary>
    public static HardwareProfile Parse(string json, string source)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new PlanException($"{source}: not valid JSON: {e.Message.Split('\n')[0]}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new PlanException($"{source}: the profile must be a JSON object");
            string backend = Str(root, "backend", source, "cuda");
            if (backend is not ("cuda" or "cpu")) throw new PlanException($"{source}: backend = \"{backend}\": must be \"cuda\" or \"cpu\"");
            bool cpu = backend == "cpu";
            long vram = cpu ? 0 : Size(root, "vram", source, required: true);
            NvmeProfile? nvme = null;
            if (root.TryGetProperty("nvme", out var n) && n.ValueKind == JsonValueKind.Object)
            {
                int block = (int)Size(n, "block_size", source, required: false, fallback: 4096);
                if (block is not (512 or 4096)) throw new PlanException($"{source}: nvme.block_size = {block}: must be 512 or 4096");
                long maxTransfer = Size(n, "max_transfer", source, required: false, fallback: 128 << 10);
                if (maxTransfer < 4096 || maxTransfer > (1L << 30)) throw new PlanException($"{source}: nvme.max_transfer = {maxTransfer}: must be 4 KiB .. 1 GiB");
                nvme = new NvmeProfile(Rate(n, "read_gbps", source, required: true), block, (int)(maxTransfer / 4096 * 4096));
            }
            return new HardwareProfile
            {
                Name = Str(root, "name", source, Path.GetFileNameWithoutExtension(source)),
                Backend = backend,
                GpuName = cpu ? "" : Str(root, "gpu", source, null),
                Sm = cpu ? 0 : Int(root, "sm", source, 0),
                VramBytes = vram,
                FreeVramBytes = cpu ? 0 : Size(root, "free_vram", source, required: false, fallback: vram),
                RamBytes = Size(root, "ram", source, required: true),
                PcieGen = Int(root, "pcie_gen", source, 0),
                PcieWidth = Int(root, "pcie_width", source, 0),
                H2dBandwidth = cpu ? 0 : Rate(root, "h2d_gbps", source, required: true),
                DeviceBandwidth = Rate(root, "device_gbps", source, required: true),
                Driver = Str(root, "driver", source, ""),
                Nvme = nvme,
            };
        }
    }

    private static string Str(JsonElement o, string key, string source, string? fallback)
    {
        if (!o.TryGetProperty(key, out var v))
            return fallback ?? throw new PlanException($"{source}: {key} is missing (required string)");
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new PlanException($"{source}: {key} = {v.GetRawText()}: must be a string");
    }

    private static int Int(JsonElement o, string key, string source, int fallback)
    {
        if (!o.TryGetProperty(key, out var v)) return fallback;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) && i >= 0 ? i
            : throw new PlanException($"{source}: {key} = {v.GetRawText()}: must be a non-negative integer");
    }

    private static long Size(JsonElement o, string key, string source, bool required, long fallback = 0)
    {
        if (!o.TryGetProperty(key, out var v))
            return required ? throw new PlanException($"{source}: {key} is missing (a size such as \"24GiB\")") : fallback;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long b) && b >= 0) return b;
        if (v.ValueKind == JsonValueKind.String && ByteSize.TryParse(v.GetString()!, out b)) return b;
        throw new PlanException($"{source}: {key} = {v.GetRawText()}: must be a size such as \"24GiB\" or a byte count");
    }

    private static double Rate(JsonElement o, string key, string source, bool required)
    {
        if (!o.TryGetProperty(key, out var v))
            return required ? throw new PlanException($"{source}: {key} is missing (GB/s)") : 0;
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d > 0 && d < 1e6 ? d * 1e9
            : throw new PlanException($"{source}: {key} = {v.GetRawText()}: must be a positive rate in GB/s");
    }

    internal static string F(double d) => d.ToString("R", CultureInfo.InvariantCulture);
}
