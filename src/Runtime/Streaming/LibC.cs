using System.Runtime.InteropServices;

namespace Engine.Runtime.Streaming;

/// <summary>The few libc calls the I/O path needs, bound with [LibraryImport] (AOT-safe). .NET's file APIs cannot
/// open with O_DIRECT, hence raw open/pread. statx is used instead of fstat because its struct has one layout on
/// every architecture (linux/stat.h).</summary>
internal static unsafe partial class LibC
{
    private const string Lib = "libc";

    public const int ORdOnly = 0;
    public const int OCloExec = 0x80000;
    public const int SeekEnd = 2;
    public const int AtFdCwd = -100;
    public const int AtEmptyPath = 0x1000;
    public const uint StatxBasicStats = 0x7FF;

    public const int EINTR = 4, EINVAL = 22;

    /// <summary>O_DIRECT differs between architectures (asm-generic/fcntl.h: 0x4000; arm64: 0x10000).</summary>
    public static int ODirect => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm
        ? 0x10000 : 0x4000;

    // open(2) is variadic; called with two arguments only (no O_CREAT, so no mode), which every Linux ABI passes in
    // the same registers as a non-variadic call.
    [LibraryImport(Lib, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "pread64", SetLastError = true)]
    public static partial nint PRead(int fd, void* buffer, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "lseek64", SetLastError = true)]
    public static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Statx(int dirFd, string path, int flags, uint mask, FileStatus* result);

    /// <summary>struct statx (include/uapi/linux/stat.h), the fields read here at their fixed offsets (the modification time is read through FileInfo, by path, so a file replaced under the plan shows too); 256 bytes.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    public struct FileStatus
    {
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(40)] public ulong Size;

        public readonly bool IsBlockDevice => (Mode & 0xF000) == 0x6000;
        public readonly bool IsRegularFile => (Mode & 0xF000) == 0x8000;
    }

    /// <summary>"EIO (Input/output error)": the errno's symbolic name and the C library's text.</summary>
    public static string Describe(int errno)
    {
        string text = Marshal.GetPInvokeErrorMessage(errno);
        return $"{ErrnoName(errno)} ({text})";
    }

    private static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM", 2 => "ENOENT", 4 => "EINTR", 5 => "EIO", 6 => "ENXIO", 9 => "EBADF", 11 => "EAGAIN",
        12 => "ENOMEM", 13 => "EACCES", 14 => "EFAULT", 16 => "EBUSY", 19 => "ENODEV", 21 => "EISDIR",
        22 => "EINVAL", 23 => "ENFILE", 24 => "EMFILE", 27 => "EFBIG", 28 => "ENOSPC", 29 => "ESPIPE",
        30 => "EROFS", 36 => "ENAMETOOLONG", 40 => "ELOOP", 61 => "ENODATA", 75 => "EOVERFLOW",
        95 => "EOPNOTSUPP", 110 => "ETIMEDOUT", 121 => "EREMOTEIO", 123 => "ENOMEDIUM", 124 => "EMEDIUMTYPE",
        _ => "errno " + errno,
    };
}
