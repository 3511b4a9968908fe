#!/usr/bin/env python3
"""GPU smoke test of the build-time PTX, with only the CUDA driver (ctypes, no toolkit, no .NET):
loads every embedded-PTX module for the device's architecture, checks its entry, runs Gemv_Q8_0 and Gemv_Q4_K on
random data against a Python reference using the generated launcher layout (views = {u64 ptr, i64 len}, ints),
and times GEMV at 4096x14336-class shapes against device-to-device copy bandwidth.
usage: ptx_smoke.py PTXDIR (PTXDIR/sm_80, PTXDIR/sm_90)"""
import ctypes, os, random, struct, sys, time

cu = ctypes.CDLL("libcuda.so.1")
def check(r, what):
    if r != 0:
        s = ctypes.c_char_p(); cu.cuGetErrorString(r, ctypes.byref(s))
        raise SystemExit(f"{what}: CUDA error {r} {s.value.decode() if s.value else ''}")

check(cu.cuInit(0), "cuInit")
dev = ctypes.c_int(); check(cu.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
major, minor = ctypes.c_int(), ctypes.c_int()
cu.cuDeviceGetAttribute(ctypes.byref(major), 75, dev); cu.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)
ctx = ctypes.c_void_p(); check(cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "ctx"); check(cu.cuCtxSetCurrent(ctx), "setctx")
arch = "sm_90" if major.value >= 9 else "sm_80"
name = ctypes.create_string_buffer(256); cu.cuDeviceGetName(name, 256, dev)
print(f"device {name.value.decode()} cc {major.value}.{minor.value} → {arch}")

root = os.path.join(sys.argv[1], arch)
modules = {}
for f in sorted(os.listdir(root)):
    ptx = open(os.path.join(root, f), "rb").read() + b"\0"
    mod = ctypes.c_void_p()
    check(cu.cuModuleLoadData(ctypes.byref(mod), ptx), f"cuModuleLoadData {f}")
    fn = ctypes.c_void_p()
    entry = "Kernel_" + f[:-4]
    check(cu.cuModuleGetFunction(ctypes.byref(fn), mod, entry.encode()), f"cuModuleGetFunction {entry}")
    modules[f[:-4]] = fn
print(f"loaded {len(modules)} modules, every entry found")

cu.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
def alloc(n):
    p = ctypes.c_uint64(); check(cu.cuMemAlloc_v2(ctypes.byref(p), max(n, 1)), "alloc"); return p.value
def upload(b):
    p = alloc(len(b)); check(cu.cuMemcpyHtoD_v2(ctypes.c_uint64(p), b, ctypes.c_size_t(len(b))), "HtoD"); return p
def download(p, n):
    b = ctypes.create_string_buffer(n); check(cu.cuMemcpyDtoH_v2(b, ctypes.c_uint64(p), ctypes.c_size_t(n)), "DtoH"); return b.raw

def launch(fn, grid, block, blob):
    buf = ctypes.create_string_buffer(blob, len(blob))
    size = ctypes.c_size_t(len(blob))
    extra = (ctypes.c_void_p * 5)(ctypes.c_void_p(1), ctypes.cast(buf, ctypes.c_void_p), ctypes.c_void_p(2),
                                  ctypes.cast(ctypes.pointer(size), ctypes.c_void_p), ctypes.c_void_p(0))
    check(cu.cuLaunchKernel(fn, grid[0], grid[1], 1, block, 1, 1, 0, None, None, extra), "launch")

def gemv_blob(w, wlen, x, xlen, y, ylen, rows, cols, nt):  # Launchers.Gemv_*: 3 views then 3 ints = 60 bytes
    return struct.pack("<QqQqQqiii", w, wlen, x, xlen, y, ylen, rows, cols, nt)

def half(b, o): return struct.unpack_from("<e", b, o)[0]
def deq_q8_0(b, o): return [half(b, o) * struct.unpack_from("<b", b, o + 2 + j)[0] for j in range(32)]
def scale_min(q, j):
    if j < 4: return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)
def deq_q4_k(b, o):
    d, dmin = half(b, o), half(b, o + 2); sc = b[o + 4:o + 16]; q = b[o + 16:o + 144]; y = []
    for j in range(4):
        s1, m1 = scale_min(sc, 2 * j); s2, m2 = scale_min(sc, 2 * j + 1)
        y += [d * s1 * (q[32 * j + l] & 0xF) - dmin * m1 for l in range(32)]
        y += [d * s2 * (q[32 * j + l] >> 4) - dmin * m2 for l in range(32)]
    return y

def check_gemv(fmt, be, bb, deq, rows, cols, nt):
    rnd = random.Random(1)
    w = bytearray(rnd.getrandbits(8) for _ in range(rows * cols // be * bb))
    for blk in range(len(w) // bb):
        struct.pack_into("<e", w, blk * bb, rnd.uniform(0.001, 0.02))
        if fmt == "Q4_K": struct.pack_into("<e", w, blk * bb + 2, rnd.uniform(0.001, 0.02))
    x = [rnd.gauss(0, 1) for _ in range(cols * nt)]
    wd, xd, yd = upload(bytes(w)), upload(struct.pack(f"<{len(x)}f", *x)), alloc(4 * rows * nt)
    launch(modules["Gemv_" + fmt], ((rows + 3) // 4, (nt + 3) // 4), 128, gemv_blob(wd, len(w), xd, len(x), yd, rows * nt, rows, cols, nt))
    check(cu.cuCtxSynchronize(), "sync")
    y = struct.unpack(f"<{rows * nt}f", download(yd, 4 * rows * nt))
    err = norm = 0.0
    for r in range(rows):
        wr = sum((deq(w, (r * cols // be + b) * bb) for b in range(cols // be)), [])
        for t in range(nt):
            ref = sum(a * b for a, b in zip(wr, x[t * cols:(t + 1) * cols]))
            err += (y[t * rows + r] - ref) ** 2; norm += ref * ref
    nmse = err / norm
    print(f"Gemv_{fmt} {rows}x{cols}x{nt}: NMSE {nmse:.3e} {'ok' if nmse < 1e-6 else 'FAIL'}")
    return nmse < 1e-6

ok = check_gemv("Q8_0", 32, 34, deq_q8_0, 37, 32 * 9, 5)
ok &= check_gemv("Q4_K", 256, 144, deq_q4_k, 13, 256 * 3, 6)

# Bandwidth: CUDA events, warm-up, median of 20.
ev0, ev1 = ctypes.c_void_p(), ctypes.c_void_p()
cu.cuEventCreate(ctypes.byref(ev0), 0); cu.cuEventCreate(ctypes.byref(ev1), 0)
def timed(fn_launch, reps=20):
    fn_launch(); check(cu.cuCtxSynchronize(), "warm")
    ts = []
    for _ in range(reps):
        cu.cuEventRecord(ev0, None); fn_launch(); cu.cuEventRecord(ev1, None); cu.cuEventSynchronize(ev1)
        ms = ctypes.c_float(); cu.cuEventElapsedTime(ctypes.byref(ms), ev0, ev1); ts.append(ms.value)
    return sorted(ts)[len(ts) // 2] / 1e3
n = 256 << 20
a, b = alloc(n), alloc(n)
t = timed(lambda: check(cu.cuMemcpyDtoD_v2(ctypes.c_uint64(b), ctypes.c_uint64(a), ctypes.c_size_t(n)), "DtoD"))
copy_bw = n / t  # bytes read (the DESIGN.md convention: 1.5 TB/s read, 3.0 counting read+write)
print(f"device-to-device copy: {copy_bw / 1e9:.0f} GB/s read ({2 * copy_bw / 1e9:.0f} GB/s read+write)")
for fmt, be, bb in [("F16", 1, 2), ("Q8_0", 32, 34), ("Q4_0", 32, 18), ("Q4_K", 256, 144), ("Q5_K", 256, 176), ("Q6_K", 256, 210)]:
    for rows, cols in [(4096, 4096), (14336, 4096), (4096, 14336)]:
        wbytes = rows * cols // be * bb
        w, x, y = alloc(wbytes), alloc(4 * cols), alloc(4 * rows)
        check(cu.cuMemsetD8_v2(ctypes.c_uint64(w), 0, ctypes.c_size_t(wbytes)), "memset")
        check(cu.cuMemsetD8_v2(ctypes.c_uint64(x), 0, ctypes.c_size_t(4 * cols)), "memset")
        blob = gemv_blob(w, wbytes, x, cols, y, rows, rows, cols, 1)
        t = timed(lambda: launch(modules["Gemv_" + fmt], ((rows + 3) // 4, 1), 128, blob))
        bw = (wbytes + 4 * cols + 4 * rows) / t
        print(f"Gemv_{fmt} {rows}x{cols}: {t * 1e6:.1f} us, {bw / 1e9:.0f} GB/s = {bw / copy_bw:.0%} of copy read bandwidth")
        for p in (w, x, y): cu.cuMemFree_v2(ctypes.c_uint64(p))
sys.exit(0 if ok else 1)
