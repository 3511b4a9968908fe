using System.Runtime.InteropServices;

namespace Engine.Runtime.Streaming;

/// <summary>How a <see cref="DirectReader"/> reaches the storage.</summary>
public enum ReadPath
{
    /// <summary>O_DIRECT: DMA from the device into the staging buffer, no page cache.</summary>
    Direct,
    /// <summary>Plain pread through the page cache: the filesystem refused O_DIRECT (tmpfs on older kernels, some
    /// FUSE and network filesystems), or it was asked for.</summary>
    Buffered,
}

/// <summary>Options of a <see cref="DirectReader"/>.</summary>
public sealed record DirectReaderOptions
{
    /// <summary>Reader threads, each with one blocking pread in flight. DESIGN.md asks for ≥ 32.</summary>
    public int QueueDepth { get; init; } = 32;

    /// <summary>Skip O_DIRECT (comparison runs, tests of the fallback).</summary>
    public bool ForceBuffered { get; init; }

    /// <summary>Where the one-line fallback notice goes; standard error when null.</summary>
    public TextWriter? Notices { get; init; }
}

/// <summary>Reads tier-C command lists from the GGUF file or a raw block device with O_DIRECT and pread on a pool of
/// reader threads (see <see cref="StagingSource"/>). Opening probes one aligned read: a filesystem that refuses
/// O_DIRECT (EINVAL at open or at the first read) is reopened buffered with a one-line notice, and
/// <see cref="ReadPath"/> says which path runs. Any other failure to open or read is a <see cref="StreamingException"/>.</summary>
public sealed unsafe class DirectReader : StagingSource
{
    private int fd;

    /// <summary>Which path the reads take.</summary>
    public ReadPath ReadPath { get; }

    /// <summary>Why O_DIRECT is not used, or null when it is.</summary>
    public string? FallbackReason { get; }

    private DirectReader(string path, int fd, LibC.FileStatus st, long length, ReadPath readPath, string? fallbackReason, int queueDepth)
        : base(path, length, st.IsRegularFile, st.IsRegularFile ? new FileInfo(path).LastWriteTimeUtc : default)
    {
        this.fd = fd;
        ReadPath = readPath;
        FallbackReason = fallbackReason;
        StartWorkers(queueDepth, "ntrun-io");
    }

    /// <summary>Opens <paramref name="path"/> (a file or a block device) for streaming.</summary>
    public static DirectReader Open(string path, DirectReaderOptions? options = null)
    {
        options ??= new DirectReaderOptions();
        if (options.QueueDepth < 1)
            throw new StreamingException($"{path}: queue depth {options.QueueDepth} must be at least 1");
        var readPath = ReadPath.Buffered;
        string? fallback = options.ForceBuffered ? "buffered reads were asked for" : null;
        int fd = -1;
        if (!options.ForceBuffered)
        {
            fd = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec | LibC.ODirect);
            int errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
            if (fd < 0 && errno != LibC.EINVAL) throw OpenFailed(path, errno);
            if (fd >= 0 && ProbeDirectRead(fd, out errno)) readPath = ReadPath.Direct;
            else
            {
                if (fd >= 0 && errno != LibC.EINVAL) { LibC.Close(fd); throw new StreamingException($"{path}: cannot read: {LibC.Describe(errno)}"); }
                if (fd >= 0) LibC.Close(fd);
                fd = -1;
                fallback = $"the filesystem refused O_DIRECT ({LibC.Describe(LibC.EINVAL)})";
                (options.Notices ?? Console.Error).WriteLine($"note: {path}: {fallback}; streaming through the page cache (slower)");
            }
        }
        if (fd < 0)
        {
            fd = LibC.Open(path, LibC.ORdOnly | LibC.OCloExec);
            if (fd < 0) throw OpenFailed(path, Marshal.GetLastPInvokeError());
        }
        try
        {
            LibC.FileStatus st;
            if (LibC.Statx(fd, "", LibC.AtEmptyPath, LibC.StatxBasicStats, &st) != 0)
                throw new StreamingException($"{path}: cannot stat: {LibC.Describe(Marshal.GetLastPInvokeError())}");
            if (!st.IsRegularFile && !st.IsBlockDevice)
                throw new StreamingException($"{path}: not a regular file or block device");
            // A block device reports size 0 in stat; its end is where lseek lands.
            long length = st.IsRegularFile ? (long)st.Size : LibC.LSeek(fd, 0, LibC.SeekEnd);
            if (length < 0) throw new StreamingException($"{path}: cannot find the device size: {LibC.Describe(Marshal.GetLastPInvokeError())}");
            return new DirectReader(path, fd, st, length, readPath, fallback, options.QueueDepth);
        }
        catch
        {
            LibC.Close(fd);
            throw;
        }
    }

    private static StreamingException OpenFailed(string path, int errno) =>
        new($"{path}: cannot open for streaming: {LibC.Describe(errno)}");

    /// <summary>Reads the first block with O_DIRECT: some filesystems accept the flag at open and refuse at read.</summary>
    private static bool ProbeDirectRead(int fd, out int errno)
    {
        void* block = NativeMemory.AlignedAlloc(ReadCommand.BlockSize, ReadCommand.BlockSize);
        try
        {
            nint n;
            do n = LibC.PRead(fd, block, ReadCommand.BlockSize, 0);
            while (n < 0 && Marshal.GetLastPInvokeError() == LibC.EINTR);
            errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
            return n >= 0;
        }
        finally { NativeMemory.AlignedFree(block); }
    }

    protected override void ReadRange(in ReadCommand command, byte* destination, long offset, long length, long requested)
    {
        // O_DIRECT must ask for whole blocks even where the file ends inside the last one; pread then returns the
        // bytes that exist. Loop on partial reads (signals, device limits) until the expected bytes are in.
        long want = ReadPath == ReadPath.Direct ? requested : length;
        long done = 0;
        while (done < length)
        {
            nint n = LibC.PRead(fd, destination + done, (nuint)(want - done), offset + done);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == LibC.EINTR) continue;
                throw new StreamingException(
                    $"{Path}: read failed at LBA {command.Lba} ({command.BlockCount} blocks, byte {offset + done}): {LibC.Describe(errno)}");
            }
            if (n == 0)
                throw new StreamingException(
                    $"{Path}: short read at LBA {command.Lba} ({command.BlockCount} blocks): got {done} of {length} bytes at byte {offset}; the file shrank under the plan, re-plan with ntc");
            done += n;
        }
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (fd >= 0) { LibC.Close(fd); fd = -1; }
    }
}
