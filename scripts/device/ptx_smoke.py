#!/usr/bin/env python3
"""GPU smoke test of the build-time PTX, with only the CUDA driver (ctypes, no toolkit, no .NET):
loads every embedded-PTX module for the device's architecture, checks its entry, runs Gemv_* and GemvSwiGlu_* for
every weight format at blocks of 128, 256 and 512 threads (1, 2, 4 warps a row) on random data against a Python
reference of ggml's dequantisation, using the generated launcher layout (views = {u64 ptr, i64 len}, ints), and
times GEMV at the Llama-3-8B shapes against a device-to-device copy counted read+write (METHOD.md).
usage: ptx_smoke.py PTXDIR (PTXDIR/sm_80, PTXDIR/sm_90)
env: GEMV_BLOCKS=128,256,512 (block sizes timed), SMOKE_SKIP_CHECK=1 (timing only, e.g. for an older build)"""
import ctypes, math, os, random, struct, sys, time

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
def swiglu_blob(g, u, wlen, x, xlen, y, ylen, rows, cols, nt):  # Launchers.GemvSwiGlu_*: 4 views then 3 ints
    return struct.pack("<QqQqQqQqiii", g, wlen, u, wlen, x, xlen, y, ylen, rows, cols, nt)

# Reference dequantisation per format (ggml-quants.c dequantize_row_*), straight from the bytes.
def half(b, o): return struct.unpack_from("<e", b, o)[0]
def deq_f32(b, o): return [struct.unpack_from("<f", b, o)[0]]
def deq_f16(b, o): return [half(b, o)]
def deq_bf16(b, o): return [struct.unpack("<f", b"\0\0" + bytes(b[o:o + 2]))[0]]
def deq_q8_0(b, o): return [half(b, o) * struct.unpack_from("<b", b, o + 2 + j)[0] for j in range(32)]
def deq_q4_0(b, o):
    d = half(b, o); q = b[o + 2:o + 18]
    return [d * ((q[j] & 0xF) - 8) for j in range(16)] + [d * ((q[j] >> 4) - 8) for j in range(16)]
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
def deq_q5_k(b, o):
    d, dmin = half(b, o), half(b, o + 2); sc = b[o + 4:o + 16]; qh = b[o + 16:o + 48]; q = b[o + 48:o + 176]; y = []
    for j in range(4):
        s1, m1 = scale_min(sc, 2 * j); s2, m2 = scale_min(sc, 2 * j + 1)
        y += [d * s1 * ((q[32 * j + l] & 0xF) | (((qh[l] >> (2 * j)) & 1) << 4)) - dmin * m1 for l in range(32)]
        y += [d * s2 * ((q[32 * j + l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4)) - dmin * m2 for l in range(32)]
    return y
def deq_q6_k(b, o):
    ql = b[o:o + 128]; qh = b[o + 128:o + 192]; sc = struct.unpack_from("<16b", b, o + 192); d = half(b, o + 208)
    y = [0.0] * 256
    for n in range(2):
        for l in range(32):
            is_ = l // 16; h = qh[32 * n + l]; a = ql[64 * n + l]; c = ql[64 * n + l + 32]
            y[128 * n + l] = d * sc[8 * n + is_] * (((a & 0xF) | ((h & 3) << 4)) - 32)
            y[128 * n + l + 32] = d * sc[8 * n + is_ + 2] * (((c & 0xF) | (((h >> 2) & 3) << 4)) - 32)
            y[128 * n + l + 64] = d * sc[8 * n + is_ + 4] * (((a >> 4) | (((h >> 4) & 3) << 4)) - 32)
            y[128 * n + l + 96] = d * sc[8 * n + is_ + 6] * (((c >> 4) | (((h >> 6) & 3) << 4)) - 32)
    return y
# name: (block elements, block bytes, dequantise, offsets of f16 scale fields to set to sane values)
FORMATS = {"F32": (1, 4, deq_f32, None), "F16": (1, 2, deq_f16, None), "BF16": (1, 2, deq_bf16, None),
           "Q8_0": (32, 34, deq_q8_0, [0]), "Q4_0": (32, 18, deq_q4_0, [0]), "Q4_K": (256, 144, deq_q4_k, [0, 2]),
           "Q5_K": (256, 176, deq_q5_k, [0, 2]), "Q6_K": (256, 210, deq_q6_k, [208])}

def random_weights(fmt, rows, cols, rnd):
    be, bb, _, scales = FORMATS[fmt]
    n = rows * cols // be
    if fmt == "F32": return bytearray(struct.pack(f"<{n}f", *[rnd.gauss(0, 1) for _ in range(n)]))
    if fmt == "F16": return bytearray(struct.pack(f"<{n}e", *[rnd.gauss(0, 1) for _ in range(n)]))
    if fmt == "BF16": return bytearray(b"".join(struct.pack("<f", rnd.gauss(0, 1))[2:] for _ in range(n)))
    w = bytearray(rnd.getrandbits(8) for _ in range(n * bb))
    for blk in range(n):
        for o in scales: struct.pack_into("<e", w, blk * bb + o, rnd.uniform(0.001, 0.02))
    return w

def gpu_rows(fmt, rows, cols, nt, w, x, block, swiglu_up=None):
    grid = ((rows + 3) // 4, (nt + 3) // 4)
    wd, xd, yd = upload(bytes(w)), upload(struct.pack(f"<{len(x)}f", *x)), alloc(4 * rows * nt)
    check(cu.cuMemsetD32_v2(ctypes.c_uint64(yd), 0x7FC00000, ctypes.c_size_t(rows * nt)), "poison")  # NaN
    if swiglu_up is None:
        launch(modules["Gemv_" + fmt], grid, block, gemv_blob(wd, len(w), xd, len(x), yd, rows * nt, rows, cols, nt))
    else:
        ud = upload(bytes(swiglu_up))
        launch(modules["GemvSwiGlu_" + fmt], grid, block, swiglu_blob(wd, ud, len(w), xd, len(x), yd, rows * nt, rows, cols, nt))
        check(cu.cuCtxSynchronize(), "sync"); cu.cuMemFree_v2(ctypes.c_uint64(ud))
    check(cu.cuCtxSynchronize(), "sync")
    y = struct.unpack(f"<{rows * nt}f", download(yd, 4 * rows * nt))
    for p in (wd, xd, yd): cu.cuMemFree_v2(ctypes.c_uint64(p))
    return y

def ref_rows(fmt, w, rows, cols):
    be, bb, deq, _ = FORMATS[fmt]
    return [sum((deq(w, (r * cols // be + b) * bb) for b in range(cols // be)), []) for r in range(rows)]

def nmse(y, ref):
    err = sum((a - b) ** 2 if a == a else float("inf") for a, b in zip(y, ref)); norm = sum(b * b for b in ref)
    return err / norm

def check_format(fmt, rows, cols, nt, seed):
    rnd = random.Random(seed)
    w, u = random_weights(fmt, rows, cols, rnd), random_weights(fmt, rows, cols, rnd)
    x = [rnd.gauss(0, 1) for _ in range(cols * nt)]
    wr, ur = ref_rows(fmt, w, rows, cols), ref_rows(fmt, u, rows, cols)
    dot = lambda r, t: sum(a * b for a, b in zip(r, x[t * cols:(t + 1) * cols]))
    ref = [dot(wr[r], t) for t in range(nt) for r in range(rows)]
    silu = lambda v: v / (1 + math.exp(min(-v, 700.0)))
    ref_sw = [silu(dot(wr[r], t)) * dot(ur[r], t) for t in range(nt) for r in range(rows)]
    ok = True
    for block in (128, 256, 512):
        e1 = nmse(gpu_rows(fmt, rows, cols, nt, w, x, block), ref)
        e2 = nmse(gpu_rows(fmt, rows, cols, nt, w, x, block, u), ref_sw)
        good = e1 < 1e-6 and e2 < 1e-6
        ok &= good
        print(f"{fmt:5} {rows}x{cols}x{nt} block {block}: gemv NMSE {e1:.1e}, gemv_swiglu {e2:.1e} {'ok' if good else 'FAIL'}")
    return ok

ok = True
for fmt, (be, _, _, _) in (FORMATS.items() if os.environ.get("SMOKE_SKIP_CHECK") != "1" else []):
    shapes = [(37, 200, 5), (9, 4096, 2)] if be == 1 else [(37, 32 * 9, 5), (11, 32 * 130, 2)] if be == 32 else [(13, 256 * 3, 6), (7, 256 * 17, 1)]
    for i, (rows, cols, nt) in enumerate(shapes): ok &= check_format(fmt, rows, cols, nt, 17 * i + len(fmt))

# Bandwidth: CUDA events, warm-up, median of 30, weights rotated over copies totalling > 4x L2 (50 MB on H100) so
# no run reads the weights from L2.
ev0, ev1 = ctypes.c_void_p(), ctypes.c_void_p()
cu.cuEventCreate(ctypes.byref(ev0), 0); cu.cuEventCreate(ctypes.byref(ev1), 0)
def timed(fn_launch, reps=30):
    # Warm up for >= 25 ms of back-to-back launches: from idle the SM clock needs that long to ramp up (a few
    # launches left it low and made every format take the same time per weight).
    t0 = time.time(); i = 0
    while time.time() - t0 < 0.025 or i < 3:
        fn_launch(i); i += 1
        if i % 16 == 0: check(cu.cuCtxSynchronize(), "warm")
    check(cu.cuCtxSynchronize(), "warm")
    ts = []
    for i in range(reps):
        cu.cuEventRecord(ev0, None); fn_launch(i + 1); cu.cuEventRecord(ev1, None); check(cu.cuEventSynchronize(ev1), "run")
        ms = ctypes.c_float(); cu.cuEventElapsedTime(ctypes.byref(ms), ev0, ev1); ts.append(ms.value)
    return sorted(ts)[len(ts) // 2] / 1e3
n = 512 << 20
a, b = alloc(n), alloc(n)
check(cu.cuMemsetD32_v2(ctypes.c_uint64(a), 0x3F800001, ctypes.c_size_t(n // 4)), "memset")
t = timed(lambda i: check(cu.cuMemcpyDtoD_v2(ctypes.c_uint64(b), ctypes.c_uint64(a), ctypes.c_size_t(n)), "DtoD"))
copy_rw = 2 * n / t  # METHOD.md: a device-to-device copy counting bytes read plus bytes written
print(f"device-to-device copy {n >> 20} MiB: {t * 1e6:.0f} us, {copy_rw / 1e9:.0f} GB/s read+write")
for p in (a, b): cu.cuMemFree_v2(ctypes.c_uint64(p))
blocks = [int(v) for v in os.environ.get("GEMV_BLOCKS", "128,256,512").split(",")]
table = []
for fmt in ["F16", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"]:
    be, bb, _, _ = FORMATS[fmt]
    for rows, cols in [(4096, 4096), (14336, 4096), (4096, 14336)]:
        wbytes = rows * cols // be * bb
        copies = max(2, -(-200_000_000 // wbytes))
        rnd = random.Random(rows + cols)
        chunk = bytes(random_weights(fmt, 64, 4096, rnd)); reps = -(-wbytes // len(chunk))
        host = (chunk * reps)[:wbytes]
        ws = [upload(host) for _ in range(copies)]
        x = upload(struct.pack(f"<{cols}f", *[rnd.gauss(0, 1) for _ in range(cols)])); y = alloc(4 * rows)
        row = [fmt, f"{rows}x{cols}", wbytes]
        for block in blocks:
            t = timed(lambda i: launch(modules["Gemv_" + fmt], ((rows + 3) // 4, 1), block,
                                       gemv_blob(ws[i % copies], wbytes, x, cols, y, rows, rows, cols, 1)))
            bw = (wbytes + 4 * cols + 4 * rows) / t
            row += [t * 1e6, bw / 1e9, bw / copy_rw]
        table.append(row)
        for p in ws + [x, y]: cu.cuMemFree_v2(ctypes.c_uint64(p))
print(f"\nGEMV, 1 token, fraction of the copy's {copy_rw / 1e9:.0f} GB/s (read+write); per block size: us, GB/s, fraction")
print(f"{'format':6} {'rows x cols':12} {'MB':>6} " + " ".join(f"{'b' + str(bs):>21}" for bs in blocks))
for r in table:
    print(f"{r[0]:6} {r[1]:12} {r[2] / 1e6:6.1f} " + " ".join(f"{r[3 + 3 * k]:6.1f} {r[4 + 3 * k]:6.0f} {r[5 + 3 * k]:6.0%}" for k in range(len(blocks))))
print("correctness:", "all ok" if ok else "FAILURES above")
sys.exit(0 if ok else 1)
