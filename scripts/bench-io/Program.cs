using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Engine.Runtime.Streaming;

// bench-io: reads a large file (or a block device from an LBA) end to end through DirectReader or MmapSource, the
// way the streaming engine does: the file cut into "layers" of --layer bytes, each a command list of --max-transfer
// commands, double-buffered (two staging slots, two batches in flight). Prints GB/s per pass and the median.
// Timing only; correctness is tests/Engine.Runtime.Tests/Streaming.
return Bench.Run(args);

internal static unsafe partial class Bench
{
    private const int Block = ReadCommand.BlockSize;

    public static int Run(string[] args)
    {
        try { return RunChecked(args); }
        catch (StreamingException e) { Console.Error.WriteLine("bench-io: " + e.Message); return 1; }
        catch (ArgumentException e) { Console.Error.WriteLine("bench-io: " + e.Message); return 2; }
    }

    private static int RunChecked(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine("usage: bench-io FILE [--create SIZE] [--mode direct|buffered|mmap] [--qd 32] [--max-transfer 1M]\n" +
                              "                [--layer 256M] [--passes 3] [--bytes SIZE] [--drop-cache]");
            return args.Length == 0 ? 2 : 0;
        }
        string path = args[0];
        string mode = "direct";
        int qd = 32, passes = 3;
        long maxTransfer = 1 << 20, layer = 256L << 20, create = 0, bytes = 0;
        bool dropCache = false;
        for (int i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--create": create = Size(Next()); break;
                case "--mode": mode = Next(); break;
                case "--qd": qd = (int)Size(Next()); break;
                case "--max-transfer": maxTransfer = Size(Next()); break;
                case "--layer": layer = Size(Next()); break;
                case "--passes": passes = (int)Size(Next()); break;
                case "--bytes": bytes = Size(Next()); break;
                case "--drop-cache": dropCache = true; break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        if (mode is not ("direct" or "buffered" or "mmap")) throw new ArgumentException($"--mode {mode}: expected direct, buffered or mmap");
        if (maxTransfer < Block || maxTransfer % Block != 0) throw new ArgumentException($"--max-transfer {maxTransfer}: must be a multiple of {Block}");
        if (layer < maxTransfer || layer % Block != 0) throw new ArgumentException($"--layer {layer}: must be a multiple of {Block} and at least --max-transfer");

        if (create > 0 && !File.Exists(path)) Create(path, create);

        using StagingSource source = mode == "mmap"
            ? MmapSource.Open(path, qd)
            : DirectReader.Open(path, new DirectReaderOptions { QueueDepth = qd, ForceBuffered = mode == "buffered" });
        long total = bytes > 0 ? Math.Min(bytes, source.Length) : source.Length;
        total = total / Block * Block;
        if (total < layer) layer = total;
        if (total == 0) throw new ArgumentException($"{path}: nothing to read");
        string path2 = source is DirectReader d ? d.ReadPath.ToString().ToLowerInvariant() : "mmap";
        Console.WriteLine($"bench-io: {path}: {total / 1e9:F2} GB, path {path2}, QD {qd}, max transfer {maxTransfer >> 10} KiB, layer {layer >> 20} MiB");

        // The command lists, built once like the plan's: one per layer-sized piece of the file.
        int layers = (int)((total + layer - 1) / layer);
        int perTransfer = (int)(maxTransfer / Block);
        var lists = new ReadCommand[layers][];
        for (int l = 0; l < layers; l++)
        {
            long start = (long)l * layer, end = Math.Min(total, start + layer);
            var list = new List<ReadCommand>();
            for (long at = start; at < end; at += maxTransfer)
                list.Add(new ReadCommand(at / Block, (int)(Math.Min(maxTransfer, end - at) / Block), at - start));
            lists[l] = [.. list];
        }
        byte*[] slots = [(byte*)NativeMemory.AlignedAlloc((nuint)layer, Block), (byte*)NativeMemory.AlignedAlloc((nuint)layer, Block)];
        ReadBatch[] batches = [new(), new()];
        var rates = new List<double>();
        try
        {
            for (int pass = 0; pass < passes; pass++)
            {
                if (dropCache) DropCache(path);
                var clock = Stopwatch.StartNew();
                for (int l = 0; l < layers; l++)
                {
                    var batch = batches[l % 2];
                    batch.Wait(); // the slot's previous layer, "consumed" at once
                    source.Submit(batch, lists[l], slots[l % 2]);
                }
                batches[0].Wait();
                batches[1].Wait();
                double seconds = clock.Elapsed.TotalSeconds, rate = total / seconds / 1e9;
                rates.Add(rate);
                Console.WriteLine($"  pass {pass + 1}: {seconds:F3} s, {rate:F2} GB/s");
            }
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
            foreach (var s in slots) NativeMemory.AlignedFree(s);
        }
        rates.Sort();
        Console.WriteLine($"bench-io: median {rates[rates.Count / 2]:F2} GB/s ({path2}, QD {qd}, {maxTransfer >> 10} KiB commands)");
        return 0;
    }

    /// <summary>A file of non-zero pseudo-random bytes, written once and fsynced so reads come from the disk.</summary>
    private static void Create(string path, long size)
    {
        Console.WriteLine($"bench-io: writing {size / 1e9:F2} GB to {path}");
        var chunk = new byte[64 << 20];
        new Random(1).NextBytes(chunk);
        using (var f = new FileStream(path + ".part", FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            for (long done = 0; done < size; done += chunk.Length)
                f.Write(chunk, 0, (int)Math.Min(chunk.Length, size - done));
            f.Flush(flushToDisk: true);
        }
        File.Move(path + ".part", path, overwrite: true);
    }

    /// <summary>Evicts the file's clean pages (posix_fadvise DONTNEED, no root needed), so buffered and mmap passes
    /// read the disk too.</summary>
    private static void DropCache(string path)
    {
        using var f = File.OpenHandle(path);
        PosixFadvise(f.DangerousGetHandle().ToInt32(), 0, 0, 4);
    }

    [LibraryImport("libc", EntryPoint = "posix_fadvise64")]
    private static partial int PosixFadvise(int fd, long offset, long length, int advice);

    private static long Size(string text)
    {
        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, 'T' => 1L << 40, _ => 1 };
        string digits = unit == 1 ? text : text[..^1];
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n <= 0)
            throw new ArgumentException($"size {text}: expected a positive number with an optional K/M/G/T suffix");
        return checked(n * unit);
    }
}
