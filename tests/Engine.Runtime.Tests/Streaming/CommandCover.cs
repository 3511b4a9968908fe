using Engine.Runtime.Streaming;

namespace Engine.Runtime.Tests.Streaming;

/// <summary>The tests' own command-list writer, independent of the planner: the 4 KiB-aligned superset of a byte
/// range, cut into commands of at most <c>maxBlocks</c> blocks, landing back to back in staging.</summary>
internal static class CommandCover
{
    public const int Block = ReadCommand.BlockSize;

    public static long AlignDown(long x) => x / Block * Block;
    public static long AlignUp(long x) => (x + Block - 1) / Block * Block;

    public static ReadCommand[] Split(long byteOffset, long byteLength, int maxBlocks, long stagingBase = 0, long baseLba = 0)
    {
        long first = AlignDown(byteOffset) / Block, end = AlignUp(byteOffset + byteLength) / Block;
        var commands = new List<ReadCommand>();
        for (long lba = first; lba < end; lba += maxBlocks)
        {
            int count = (int)Math.Min(maxBlocks, end - lba);
            commands.Add(new ReadCommand(baseLba + lba, count, stagingBase + (lba - first) * Block));
        }
        return [.. commands];
    }

    /// <summary>Staging bytes the commands fill.</summary>
    public static long StagingBytes(ReadCommand[] commands) =>
        commands.Length == 0 ? 0 : commands.Max(c => c.StagingOffset + c.ByteLength);
}
