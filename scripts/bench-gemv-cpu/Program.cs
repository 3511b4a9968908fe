using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Plans.Formats;
using Engine.Plans.Gguf;
using Engine.Plans.Synth;
using Engine.Runtime.Cpu;

// CPU GEMV (one token) per weight format at the Llama 3.1 8B shapes, through the CPU backend's MatMul and worker
// pool: weights random N(0, 0.02²) quantized once, median of 15 runs after 60 warm-ups (tiered JIT promotes after 30 calls), GB/s of weight bytes read.
// Usage: bench-gemv-cpu [-t THREADS]   (default: every core)
int ti = Array.IndexOf(args, "-t");
int threads = ti >= 0 ? int.Parse(args[ti + 1]) : Environment.ProcessorCount;
(int Rows, int Cols)[] shapes = args.Contains("--reverse") ? [(4096, 14336), (14336, 4096), (4096, 4096)] : [(4096, 4096), (14336, 4096), (4096, 14336)];
GgmlType[] types = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];
Console.WriteLine($"CPU GEMV, {threads} threads, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd}");
Console.WriteLine("| format | rows x cols | weight MiB | ms | GB/s |");
Console.WriteLine("| --- | --- | ---: | ---: | ---: |");
using var pool = new WorkerPool(threads);
var rng = new Random(5);
foreach (var type in types)
    foreach (var (rows, cols) in shapes)
        unsafe
        {
            long rowBytes = GgmlTypeInfo.RowBytes(type, cols), bytes = rowBytes * rows;
            byte* w = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            float* x = (float*)NativeMemory.AlignedAlloc((nuint)cols * 4, 64);
            float* y = (float*)NativeMemory.AlignedAlloc((nuint)rows * 4, 64);
            var src = new float[cols];
            for (int r = 0; r < rows; r++)
            {
                for (int i = 0; i < cols; i++) src[i] = (float)(0.02 * (rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 2);
                var dst = new Span<byte>(w + r * rowBytes, (int)rowBytes);
                if (type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16) WeightFormat.QuantizeRow(type, src, dst);
                else SynthQuantizers.QuantizeRow(type, src, dst);
            }
            for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() - 0.5);
            using var matMul = new MatMul(threads, cols, 1);
            var m = new WeightMatrix(w, type, rows, cols);
            for (int i = 0; i < 60; i++) matMul.Run(pool, m, x, 1, y);   // past tiered JIT's 30-call promotion
            var ms = new double[15];
            for (int i = 0; i < ms.Length; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                matMul.Run(pool, m, x, 1, y);
                ms[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }
            Array.Sort(ms);
            double med = ms[ms.Length / 2];
            Console.WriteLine($"| {type} | {rows} x {cols} | {bytes / 1048576.0:F1} | {med:F2} | {bytes / (med * 1e-3) / 1e9:F1} |");
            NativeMemory.AlignedFree(w); NativeMemory.AlignedFree(x); NativeMemory.AlignedFree(y);
        }
