using System.Globalization;
using Engine.Plans.Hardware;
using Engine.Plans.PlanFile;

namespace Engine.Plans.Tiering;

/// <summary>A layer as the tiering sees it: its image (the 4 KiB-aligned superset of its tensors in the GGUF,
/// what a streamed layer moves), its bytes when packed resident (tensors 256-aligned) and its weight bytes.</summary>
public sealed record LayerImage(int Layer, long FileOffset, long Size, long PackedBytes, long WeightBytes);

/// <summary>What is reserved before any layer is placed: on the device, the workspace, the KV cache and the
/// resident global weights; in pinned RAM, the host-resident token embedding. Slots and staging are reserved per
/// candidate slot size inside <see cref="TierPlanner"/>.</summary>
public sealed record TierRequest(IReadOnlyList<LayerImage> Layers, long DeviceFixed, long PinnedFixed, Budgets Budgets,
    int Slots, bool Cpu, bool HasNvme, CostModel Cost, int Ctx);

public sealed record TierDecision(Tier[] Tiers, int Slots, long SlotSize, long StagingSlotSize, string[] Reasons,
    double LayerSeconds, string Summary);

/// <summary>Chooses every layer's tier by the per-token cost model, not a greedy fill. For each candidate slot size
/// S (each distinct layer image size, and "no streaming"): layers larger than S must be resident; slots × S (and
/// staging × S when anything comes from NVMe) are reserved first; the resident set is a knapsack maximising the
/// bytes kept off the link (a layer saves max(bytes/link, compute) − bytes/HBM, proportional to its bytes);
/// streamed layers fill pinned RAM the same way and the rest go to NVMe. The candidate with the least predicted
/// time per token wins; ties go to the smaller slot.</summary>
public static class TierPlanner
{
    public static TierDecision Decide(TierRequest r)
    {
        var L = r.Layers;
        long vram = r.Cpu ? 0 : r.Budgets.Vram, ram = r.Budgets.Ram;
        long allPacked = L.Sum(l => l.PackedBytes);
        long deviceCapNoStream = r.Cpu ? ram - r.PinnedFixed : vram;
        if (r.DeviceFixed + allPacked <= deviceCapNoStream)
        {
            var reasons = L.Select(l => $"resident: all layers fit ({Gb(r.DeviceFixed + allPacked)} of {Gb(deviceCapNoStream)} budget)").ToArray();
            return new TierDecision(L.Select(_ => Tier.A).ToArray(), 0, 0, 0, reasons, L.Sum(l => r.Cost.Seconds(Tier.A, l.Size, l.WeightBytes)),
                "every layer resident; no streaming slots");
        }
        if (r.Slots < 1) throw new PlanException($"--slots {r.Slots}: the model does not fit resident, streaming needs at least 1 slot");

        TierDecision? best = null;
        string? lastFailure = null;
        bool deviceTooSmall = true;
        foreach (long S in L.Select(l => l.Size).Distinct().Order())
        {
            var tiers = new Tier[L.Count];
            var why = new string[L.Count];
            long slots = (long)r.Slots * S;
            // cpu: the "device" arena is RAM too, and every streamed layer comes from NVMe through staging.
            long deviceCap = r.Cpu ? ram - r.PinnedFixed - slots : vram;
            long cap = deviceCap - r.DeviceFixed - slots;
            foreach (var l in L.Where(l => l.Size > S))
            {
                tiers[l.Layer] = Tier.A; cap -= l.PackedBytes;
                why[l.Layer] = $"resident: image {Gb(l.Size)} larger than the {Gb(S)} slot";
            }
            if (cap < 0)
            {
                long forced = deviceCap - r.DeviceFixed - slots - cap;
                lastFailure = r.Cpu
                    ? $"RAM budget {Gb(ram - r.PinnedFixed)} < {Gb(r.DeviceFixed + 2 * slots + forced)} needed for KV cache, workspace and globals ({Gb(r.DeviceFixed)}) + {r.Slots} streaming and {r.Slots} staging slot(s) × {Gb(S)}"
                    : $"VRAM budget {Gb(vram)} < {Gb(r.DeviceFixed + slots + forced)} needed for KV cache, workspace and resident globals ({Gb(r.DeviceFixed)}) + {r.Slots} streaming slot(s) × {Gb(S)}";
                continue;
            }
            deviceTooSmall = false;
            var optional = L.Where(l => l.Size <= S).ToList();
            var resident = Spread(optional.Select(l => l.PackedBytes).ToList(), Knapsack(optional.Select(l => l.PackedBytes).ToList(), cap));
            var streamed = new List<LayerImage>();
            for (int i = 0; i < optional.Count; i++)
            {
                var l = optional[i];
                if (resident[i]) { tiers[l.Layer] = Tier.A; why[l.Layer] = $"resident: chosen for VRAM (saves {Ms(r.Cost.Seconds(Tier.B, l.Size, l.WeightBytes) - r.Cost.Seconds(Tier.A, l.Size, l.WeightBytes))}/token over streaming)"; }
                else streamed.Add(l);
            }
            if (streamed.Count == 0) continue; // covered by a smaller S or by the all-resident case
            long stagingSlot = 0;
            if (!r.Cpu && streamed.Sum(l => l.Size) <= ram - r.PinnedFixed)
            {
                foreach (var l in streamed) { tiers[l.Layer] = Tier.B; why[l.Layer] = "pinned RAM → device: VRAM budget full"; }
            }
            else
            {
                if (!r.HasNvme)
                {
                    lastFailure = r.Cpu
                        ? $"RAM budget {Gb(ram)} holds {Gb(r.DeviceFixed + L.Where(l => tiers[l.Layer] == Tier.A).Sum(l => l.PackedBytes))} resident but the model needs {Gb(r.DeviceFixed + allPacked)}, and there is no NVMe source"
                        : $"VRAM budget {Gb(vram)} + RAM budget {Gb(ram)} hold {Gb(vram + ram - r.PinnedFixed)} of weights but the model's layers need {Gb(allPacked)} + {Gb(r.DeviceFixed + r.PinnedFixed)} reserved, and there is no NVMe source";
                    continue;
                }
                stagingSlot = S;
                long capB = r.Cpu ? 0 : ram - r.PinnedFixed - slots;
                if (capB < 0 && !r.Cpu) { lastFailure = $"RAM budget {Gb(ram)} < {Gb(r.PinnedFixed + slots)} needed for the token embedding and {r.Slots} staging slot(s) × {Gb(S)}"; continue; }
                var inRam = r.Cpu ? new bool[streamed.Count] : Knapsack(streamed.Select(l => l.Size).ToList(), capB);
                for (int i = 0; i < streamed.Count; i++)
                {
                    var l = streamed[i];
                    if (inRam[i]) { tiers[l.Layer] = Tier.B; why[l.Layer] = "pinned RAM → device: VRAM budget full"; }
                    else
                    {
                        tiers[l.Layer] = Tier.C;
                        why[l.Layer] = r.Cpu ? "NVMe → staging → host arena: RAM budget full" : "NVMe → staging → device: VRAM and RAM budgets full";
                    }
                }
            }
            double t = L.Sum(l => r.Cost.Seconds(tiers[l.Layer], l.Size, l.WeightBytes));
            int nA = tiers.Count(x => x == Tier.A), nB = tiers.Count(x => x == Tier.B), nC = tiers.Count(x => x == Tier.C);
            var d = new TierDecision(tiers, r.Slots, S, stagingSlot, why, t,
                $"slot {Gb(S)} × {r.Slots}: {nA} A + {nB} B + {nC} C layers, {Ms(t)}/token for layers");
            if (best == null || t < best.LayerSeconds) best = d;
        }
        if (best != null) return best;
        if (deviceTooSmall)
            throw new PlanException($"budget too small for one streamed layer plus the KV cache (ctx {r.Ctx}): {lastFailure}: raise --vram-budget/--ram-budget, lower --ctx or --slots");
        throw new PlanException($"the model fits nowhere: {lastFailure}: raise --ram-budget or give an NVMe source (--nvme DEVICE --lba BASE, or a profile with nvme)");
    }

    /// <summary>0/1 knapsack maximising packed bytes within <paramref name="capacity"/>. Sizes are rounded up to a
    /// granule (≥ 4 KiB, at most 16384 granules) so a chosen set always fits; ties prefer lower layers.</summary>
    /// <summary>Among layers of one size, which of them stay resident does not change the bytes streamed, but it
    /// changes what a streamed layer's copy overlaps: spread evenly (resident, streamed, resident, … for half and
    /// half) each copy runs while the resident layers before it compute, where the knapsack's lowest-indexed choice
    /// put the copies back to back after them (70B-40L prefill, docs/benchmarks.md). So the knapsack's count of each
    /// size is kept and spread over that size's layers (a quantizer's mix, e.g. Q4_K_M's Q6_K layers, gives a few
    /// sizes).</summary>
    public static bool[] Spread(IReadOnlyList<long> sizes, bool[] take)
    {
        var spread = new bool[take.Length];
        foreach (var size in sizes.Distinct())
        {
            var same = Enumerable.Range(0, sizes.Count).Where(i => sizes[i] == size).ToArray();
            int n = same.Length, k = same.Count(i => take[i]);
            // The j-th layer of the size is resident when ceil((j + 1)·k / n) > ceil(j·k / n): k of n, evenly, the
            // first one resident.
            for (int j = 0; j < n; j++)
                spread[same[j]] = ((long)(j + 1) * k + n - 1) / n > ((long)j * k + n - 1) / n;
        }
        return spread;
    }

    public static bool[] Knapsack(IReadOnlyList<long> sizes, long capacity)
    {
        int n = sizes.Count;
        var take = new bool[n];
        if (n == 0 || capacity <= 0) return take;
        if (sizes.Sum() <= capacity) { Array.Fill(take, true); return take; }
        long g = Math.Max(4096, (capacity + 16383) / 16384);
        int cap = (int)(capacity / g);
        var units = sizes.Select(s => (int)Math.Min(int.MaxValue, (s + g - 1) / g)).ToArray();
        // best[i, c]: most bytes from items i..n-1 within c granules (filled from the back, so reading forward
        // from item 0 takes the lowest-indexed layers among equal choices).
        var best = new long[n + 1][];
        best[n] = new long[cap + 1];
        for (int i = n - 1; i >= 0; i--)
        {
            var next = best[i + 1];
            var cur = best[i] = new long[cap + 1];
            for (int c = 0; c <= cap; c++)
            {
                long v = next[c];
                if (units[i] <= c) v = Math.Max(v, sizes[i] + next[c - units[i]]);
                cur[c] = v;
            }
        }
        int left = cap;
        for (int i = 0; i < n; i++)
        {
            if (units[i] <= left && sizes[i] + best[i + 1][left - units[i]] >= best[i + 1][left] && sizes[i] + best[i + 1][left - units[i]] == best[i][left])
            {
                take[i] = true;
                left -= units[i];
            }
        }
        return take;
    }

    internal static string Gb(long b) => ByteSize.Format(b);
    internal static string Ms(double s) => (s * 1e3).ToString("0.00", CultureInfo.InvariantCulture) + " ms";
}
