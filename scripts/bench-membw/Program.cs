using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

// Read bandwidth: T threads sum disjoint contiguous shares of one buffer (default 1 GiB) with 256-bit loads and
// four independent accumulators, as a decode GEMV streams its weights. Prints the best and the median of the
// passes in GB/s (10^9 bytes), the figure docs/benchmarks.md divides the bytes per token by.
// usage: bench-membw [-t THREADS] [-s MiB] [-r PASSES]
int threads = 2, mib = 1024, passes = 7;
for (int i = 0; i + 1 < args.Length; i += 2)
    switch (args[i])
    {
        case "-t": threads = int.Parse(args[i + 1]); break;
        case "-s": mib = int.Parse(args[i + 1]); break;
        case "-r": passes = int.Parse(args[i + 1]); break;
        default: Console.Error.WriteLine($"bench-membw: unknown option {args[i]} (usage: bench-membw [-t THREADS] [-s MiB] [-r PASSES])"); return 2;
    }
long bytes = (long)mib << 20;
unsafe
{
    byte* buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
    new Span<byte>(buffer, 1 << 20).Fill(1);
    for (long o = 0; o < bytes; o += 1 << 20) Buffer.MemoryCopy(buffer, buffer + o, 1 << 20, 1 << 20);   // fault every page in
    var sums = new float[threads];
    var rates = new double[passes];
    using var start = new Barrier(threads + 1);
    using var done = new Barrier(threads + 1);
    bool stop = false;
    var workers = new Thread[threads];
    for (int t = 0; t < threads; t++)
    {
        int index = t;
        workers[t] = new Thread(() =>
        {
            long share = bytes / threads / 128 * 128;
            float* p = (float*)(buffer + index * share);
            long n = share / 4;
            while (true)
            {
                start.SignalAndWait();
                if (Volatile.Read(ref stop)) return;
                Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
                for (long i = 0; i < n; i += 32)
                {
                    s0 += Vector256.Load(p + i); s1 += Vector256.Load(p + i + 8);
                    s2 += Vector256.Load(p + i + 16); s3 += Vector256.Load(p + i + 24);
                }
                sums[index] += Vector256.Sum(s0 + s1 + s2 + s3);
                done.SignalAndWait();
            }
        }) { IsBackground = true };
        workers[t].Start();
    }
    long read = bytes / threads / 128 * 128 * threads;
    for (int r = 0; r < passes; r++)
    {
        start.SignalAndWait();
        var sw = Stopwatch.StartNew();
        done.SignalAndWait();
        rates[r] = read / sw.Elapsed.TotalSeconds / 1e9;
    }
    Volatile.Write(ref stop, true);
    start.SignalAndWait();
    Array.Sort(rates);
    Console.WriteLine($"read bandwidth, {threads} threads, {mib} MiB: best {rates[^1]:F1} GB/s, median {rates[passes / 2]:F1} GB/s " +
        $"(avx2 {Avx2.IsSupported}, checksum {sums.Sum():E1})");
}
return 0;
