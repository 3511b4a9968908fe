using Xunit;
using System.Runtime.InteropServices;
using Engine.Runtime.Streaming;

namespace Engine.Runtime.Tests.Streaming;

/// <summary>A file of random bytes (fixed seed, never zeros) whose size is not a multiple of 4 KiB, written next to
/// the test binaries rather than in /tmp, which on some CI boxes is a tmpfs (the direct test still passes there,
/// through the fallback).</summary>
public sealed class StreamingFixture : IDisposable
{
    public const int FileSize = 3 * 1024 * 1024 + 1234;

    public string Directory { get; }
    public string FilePath { get; }
    public byte[] Bytes { get; }

    public StreamingFixture()
    {
        Directory = Path.Combine(AppContext.BaseDirectory, "streaming-" + Environment.ProcessId);
        System.IO.Directory.CreateDirectory(Directory);
        FilePath = Path.Combine(Directory, "weights.bin");
        Bytes = new byte[FileSize];
        new Random(20261126).NextBytes(Bytes);
        File.WriteAllBytes(FilePath, Bytes);
    }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}

/// <summary>A 4 KiB-aligned native buffer, filled with 0xCD so bytes the reader fails to write show.</summary>
internal sealed unsafe class AlignedBuffer : IDisposable
{
    public byte* Pointer { get; private set; }
    public long Length { get; }

    public AlignedBuffer(long length)
    {
        Length = Math.Max(length, ReadCommand.BlockSize);
        Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)Length, ReadCommand.BlockSize);
        new Span<byte>(Pointer, checked((int)Length)).Fill(0xCD);
    }

    public Span<byte> Span => new(Pointer, (int)Length);

    public void Dispose()
    {
        if (Pointer != null) NativeMemory.AlignedFree(Pointer);
        Pointer = null;
    }
}
