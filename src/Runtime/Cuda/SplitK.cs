using Engine.Plans.PlanFile;
using Engine.Runtime.Generated;

namespace Engine.Runtime.Cuda;

/// <summary>How many ways a prompt step's tiled GEMM splits its columns (grid z; kernels/Gemm.cs <c>SumSplits</c>,
/// docs/kernels.md "Split-k"). A step of few tokens has few 128-row × 64-token tiles: an 8B's o and down projections
/// have 32 below 64 tokens, a quarter of the groups an H200 runs at once, so most of the GPU idled through their long
/// column loops and a 16-token prompt took as long as 11 decode steps. Split, a tile's columns run as up to
/// <see cref="MaxSplits"/> groups that fill the GPU and the last of them sums their partial tiles in split order.</summary>
public static class SplitK
{
    /// <summary>Most splits a tile takes.</summary>
    public const int MaxSplits = 8;

    /// <summary>Fewest stages (128 columns each) a split keeps, so its loop still covers the next stage's loads.</summary>
    public const int MinStages = 2;

    /// <summary>The GEMM's floats of a partial tile and columns of a stage (kernels/Gemm.cs PartFloats, 32·StageGroups;
    /// the runtime does not reference the kernels: a test holds them equal).</summary>
    public const int PartFloats = 128 * 64, StageColumns = 128;

    /// <summary>A launch's split-k workspace: the partial tiles it holds (the smaller of its <c>mm_part</c> buffer in
    /// tiles and its <c>mm_sync</c> tickets; 0 where the kernel takes neither, and then its batch kernel never splits)
    /// and the launch's columns (its <c>cols</c> argument).</summary>
    public readonly record struct Workspace(int Capacity, int Cols);

    /// <summary>The workspace of <paramref name="ins"/>, from its arguments (a batch kernel takes its launch kernel's:
    /// the families that take <c>mm_part</c> and <c>mm_sync</c>, gemm_add and gemm_qkv, are the ones that split).</summary>
    public static Workspace WorkspaceOf(Plan plan, Instruction ins)
    {
        var e = KernelTable.All[(int)ins.KernelId];
        long part = -1, sync = -1;
        int cols = 0;
        for (int j = 0; j < e.Params.Count; j++)
        {
            var a = ins.Arguments[j];
            switch (e.Params[j].Name)
            {
                case "mm_part" when a.Kind == ArgKind.Buffer: part = plan.Buffers[(int)a.Value].Size / (4L * PartFloats); break;
                case "mm_sync" when a.Kind == ArgKind.Buffer: sync = plan.Buffers[(int)a.Value].Size / 4; break;
                case "cols" when a.Kind == ArgKind.I32: cols = (int)a.Value; break;
            }
        }
        return new Workspace(part < 0 || sync < 0 ? 0 : (int)Math.Min(part, sync), cols);
    }

    /// <summary>The splits for a grid of <paramref name="tiles"/> tiles over <paramref name="cols"/> columns on a GPU that
    /// runs <paramref name="slots"/> GEMM groups at once: the count in 1 … <see cref="MaxSplits"/> (within the
    /// workspace's <paramref name="capacity"/> and <see cref="MinStages"/> a split) whose waves take the least time,
    /// ceil(s·tiles / slots) / s of the unsplit tile's, a count taken only where it needs 10 % less than the best smaller one.</summary>
    public static uint Of(long tiles, int cols, int slots, int capacity)
    {
        int stages = cols / StageColumns;
        uint best = 1;
        double bestCost = Math.Ceiling((double)tiles / slots);
        for (int s = 2; s <= MaxSplits && s * tiles <= capacity && s * MinStages <= stages; s++)
        {
            double cost = Math.Ceiling((double)s * tiles / slots) / s;
            if (cost < 0.9 * bestCost) { best = (uint)s; bestCost = cost; }
        }
        return best;
    }
}
