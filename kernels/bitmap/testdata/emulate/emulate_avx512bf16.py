#!/usr/bin/env python3
"""Executes the avx512bf16 kernels of kernels/bitmap on a machine without
AVX512-BF16, by emulating the real machine code: GNU objdump's disassembly of
the built test binary (so the hand-written instruction bytes are what is
run), each instruction's semantics taken from the Intel SDM, every buffer a
tight memory region (a read or write outside raises). The kernels are called
as kernels_avx512bf16_amd64.go calls them, on random matrices of many shapes,
and checked against float64 references: within the fp32 accumulation bound
of the product with x rounded to bf16, and within 2^-8 sum|w||x| of the
exact one. The batched product (bf16Gemm: packBF16 on each row of x,
decodeBitmapBF16Words, packPairsBF16, gemmBF16Tile), MulT and Mul, runs as its Go drivers
call it, replayed here with the same blocks and slices, on shapes with
partial blocks of W, x and dy. Run from the repository root:

    go test -c -o /tmp/bitmap.test ./kernels/bitmap
    objdump -d --no-show-raw-insn /tmp/bitmap.test > /tmp/bitmap.dis
    python3 kernels/bitmap/testdata/emulate/emulate_avx512bf16.py /tmp/bitmap.dis [seed]

With --mutate instead of a seed, it edits the disassembled batched-product
kernels in a few deliberately wrong ways (MUTATIONS) and fails unless the
checks catch every one.

This checks the kernels' logic (loops, offsets, masks, layouts) and the
encodings as objdump decodes them; it cannot check the SDM semantics it
implements against silicon.
"""

import re, struct, math, random, sys

DIS = sys.argv[1] if len(sys.argv) > 1 else '/tmp/bitmap.dis'

def f32(x):
    return struct.unpack('<f', struct.pack('<f', x))[0]

def bits_to_f32(b):
    return struct.unpack('<f', struct.pack('<I', b & 0xffffffff))[0]

def f32_to_bits(x):
    return struct.unpack('<I', struct.pack('<f', x))[0]

def is_denorm_bits(b):
    return (b & 0x7f800000) == 0 and (b & 0x7fffffff) != 0

def daz(b):
    return b & 0x80000000 if is_denorm_bits(b) else b

def ftz(x):
    b = f32_to_bits(x)
    return bits_to_f32(daz(b))

def cvt_bf16(b):
    if (b & 0x7fffffff) > 0x7f800000:
        return ((b >> 16) | 0x40) & 0xffff
    if is_denorm_bits(b) or (b & 0x7fffffff) == 0:
        return (b >> 16) & 0x8000
    return ((b + 0x7fff + ((b >> 16) & 1)) >> 16) & 0xffff

def rne_bf16_go(v):  # kernels.Float32ToBF16
    b = f32_to_bits(v)
    if b & 0x7fffffff > 0x7f800000:
        return (b >> 16) | 0x40
    return ((b + 0x7fff + ((b >> 16) & 1)) >> 16) & 0xffff

class OOB(Exception):
    pass

class Mem:
    def __init__(self):
        self.regions = []
        self.next = 0x10000
    def alloc(self, n, name, fill=0):
        base = self.next
        self.next += (n + 64 + 4096) // 64 * 64 + 64 * 7  # gaps between regions
        self.regions.append((base, bytearray([fill]) * n if n else bytearray(), name))
        return base
    def find(self, addr, n):
        for base, buf, name in reversed(self.regions):  # the newest first
            if base <= addr and addr + n <= base + len(buf):
                return buf, addr - base
        raise OOB('access [%#x, +%d) outside every buffer' % (addr, n))
    def read(self, addr, n):
        buf, off = self.find(addr, n)
        return bytes(buf[off:off + n])
    def write(self, addr, data):
        buf, off = self.find(addr, len(data))
        buf[off:off + len(data)] = data
    def region(self, name):
        for base, buf, n in self.regions:
            if n == name:
                return base, buf
        raise KeyError(name)

GPR64 = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp'] + ['r%d' % i for i in range(8, 16)]
R32 = {'eax': 'rax', 'ebx': 'rbx', 'ecx': 'rcx', 'edx': 'rdx', 'esi': 'rsi', 'edi': 'rdi'}
R32.update({'r%dd' % i: 'r%d' % i for i in range(8, 16)})

def parse_functions():
    funcs = {}
    cur = None
    for line in open(DIS):
        m = re.match(r'^[0-9a-f]+ <(.*)>:', line)
        if m:
            m = re.match(r'github.com/salr-go/salr/kernels/bitmap\.(\w+)\.abi0$', m.group(1))
            cur = m.group(1) if m else None
            if cur:
                funcs[cur] = []
            continue
        m = re.match(r'^\s*([0-9a-f]+):\t(\S+)\s*(.*)$', line.rstrip('\n'))
        if m and cur:
            ops = m.group(3)
            ops = re.sub(r'\s*<[^>]*>', '', ops)
            funcs[cur].append((int(m.group(1), 16), m.group(2), ops))
    return funcs

def split_ops(s):
    out, depth, cur = [], 0, ''
    for ch in s:
        if ch == '(':
            depth += 1
        elif ch == ')':
            depth -= 1
        if ch == ',' and depth == 0:
            out.append(cur.strip()); cur = ''
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out

class CPU:
    def __init__(self, mem):
        self.mem = mem
        self.r = {n: 0 for n in GPR64}
        self.z = [[0] * 16 for _ in range(32)]  # dword lanes
        self.k = [0] * 8
        self.ZF = self.SF = self.OF = self.CF = 0
        self.count = {}

    # --- operands
    def gpr_name(self, s):
        s = s.lstrip('%')
        if s in self.r:
            return s, 64
        if s in R32:
            return R32[s], 32
        if s == 'cl':
            return 'rcx', 8
        raise ValueError('reg ' + s)

    def addr(self, s):
        m = re.match(r'^(-?0x[0-9a-f]+|-?\d+)?\((%\w+)?(?:,(%\w+),(\d))?\)$', s)
        if not m:
            raise ValueError('mem ' + s)
        disp = int(m.group(1), 0) if m.group(1) else 0
        a = disp
        if m.group(2):
            a += self.r[self.gpr_name(m.group(2))[0]]
        if m.group(3):
            a += self.r[self.gpr_name(m.group(3))[0]] * int(m.group(4))
        return a & 0xffffffffffffffff

    def get(self, s, size=None):
        if s.startswith('$'):
            return int(s[1:], 0)
        if s.startswith('%'):
            n, w = self.gpr_name(s)
            return self.r[n] & ((1 << w) - 1)
        n = size // 8
        return int.from_bytes(self.mem.read(self.addr(s), n), 'little')

    def set(self, s, v, size):
        n, w = self.gpr_name(s)
        if w == 64:
            self.r[n] = v & 0xffffffffffffffff
        elif w == 32:
            self.r[n] = v & 0xffffffff
        else:
            raise ValueError(s)

    def size_of(self, s):
        return self.gpr_name(s)[1]

    def flags_logic(self, v, w):
        v &= (1 << w) - 1
        self.ZF = int(v == 0); self.SF = v >> (w - 1) & 1; self.OF = 0; self.CF = 0

    def flags_sub(self, a, b, w, cf=True):
        mask = (1 << w) - 1
        res = (a - b) & mask
        sa, sb, sr = a >> (w - 1) & 1, b >> (w - 1) & 1, res >> (w - 1) & 1
        self.ZF = int(res == 0); self.SF = sr; self.OF = int(sa != sb and sr != sa)
        if cf:
            self.CF = int((a & mask) < (b & mask))
        return res

    def flags_add(self, a, b, w, cf=True):
        mask = (1 << w) - 1
        res = (a + b) & mask
        sa, sb, sr = a >> (w - 1) & 1, b >> (w - 1) & 1, res >> (w - 1) & 1
        self.ZF = int(res == 0); self.SF = sr; self.OF = int(sa == sb and sr != sa)
        if cf:
            self.CF = int(a + b > mask)
        return res

    # --- vectors
    def vreg(self, s):
        m = re.match(r'%([xyz])mm(\d+)$', s)
        return int(m.group(2)), {'x': 4, 'y': 8, 'z': 16}[m.group(1)]

    def vdest(self, s):
        """returns reg, lanes, mask reg or None, zeroing"""
        m = re.match(r'^(%[xyz]mm\d+)(?:\{%k(\d)\})?(\{z\})?$', s)
        r, lanes = self.vreg(m.group(1))
        return r, lanes, (int(m.group(2)) if m.group(2) else None), bool(m.group(3))

    def words(self, r):
        out = []
        for d in self.z[r]:
            out += [d & 0xffff, d >> 16]
        return out

    def set_words(self, r, ws):
        self.z[r] = [ws[2 * i] | ws[2 * i + 1] << 16 for i in range(16)]

    def run(self, code, args):
        # stack: return address then args (8 bytes each)
        frame = bytearray(8 + 8 * len(args))
        for i, a in enumerate(args):
            frame[8 + 8 * i:16 + 8 * i] = (a & 0xffffffffffffffff).to_bytes(8, 'little')
        sp = self.mem.alloc(len(frame), 'stack')
        self.mem.write(sp, bytes(frame))
        self.r['rsp'] = sp
        idx = {a: i for i, (a, _, _) in enumerate(code)}
        pc = 0
        steps = 0
        while True:
            steps += 1
            if steps > 5_000_000:
                raise RuntimeError('runaway')
            addr, op, ops = code[pc]
            o = split_ops(ops) if ops else []
            pc += 1
            self.count[op] = self.count.get(op, 0) + 1
            if op == 'ret':
                return
            if op == 'nop':
                continue
            if op == 'int3':
                raise RuntimeError('fell into int3')
            if op in ('je', 'jne', 'jl', 'jge', 'jmp', 'jb', 'jae'):
                target = int(o[0], 16)
                take = {'je': self.ZF == 1, 'jne': self.ZF == 0, 'jl': self.SF != self.OF,
                        'jge': self.SF == self.OF, 'jmp': True, 'jb': self.CF == 1, 'jae': self.CF == 0}[op]
                if take:
                    pc = idx[target]
                continue
            if op == 'mov':
                w = self.size_of(o[1])
                self.set(o[1], self.get(o[0], w), w)
            elif op == 'movzwl':
                self.set(o[1], self.get(o[0], 16), 32)
            elif op == 'lea':
                self.set(o[1], self.addr(o[0]), self.size_of(o[1]))
            elif op in ('add', 'sub', 'cmp', 'and', 'test'):
                w = self.size_of(o[1])
                a, b = self.get(o[1]), self.get(o[0], w)
                if op == 'add':
                    self.set(o[1], self.flags_add(a, b, w), w)
                elif op == 'sub':
                    self.set(o[1], self.flags_sub(a, b, w), w)
                elif op == 'cmp':
                    self.flags_sub(a, b, w)
                elif op == 'and':
                    v = a & b; self.flags_logic(v, w); self.set(o[1], v, w)
                else:
                    self.flags_logic(a & b, w)
            elif op == 'dec':
                w = self.size_of(o[0])
                self.set(o[0], self.flags_sub(self.get(o[0]), 1, w, cf=False), w)
            elif op in ('shr', 'shl'):
                if len(o) == 1:  # shift by one
                    o = ['$1'] + o
                w = self.size_of(o[1])
                cnt = (self.r['rcx'] & 0xff if o[0] == '%cl' else int(o[0][1:], 0)) & (63 if w == 64 else 31)
                a = self.get(o[1])
                v = (a >> cnt) if op == 'shr' else (a << cnt) & ((1 << w) - 1)
                if cnt:
                    self.flags_logic(v, w)
                self.set(o[1], v, w)
            elif op == 'popcnt':
                w = self.size_of(o[1])
                v = bin(self.get(o[0], w)).count('1')
                self.set(o[1], v, w)
                self.ZF = int(v == 0)
            elif op in ('kmovd', 'kmovw'):
                w = 32 if op == 'kmovd' else 16
                src = o[0]
                v = self.get(src, w) & ((1 << w) - 1)
                self.k[int(o[1][2:])] = v
            elif op == 'prefetcht0':
                pass
            elif op == 'vzeroupper':
                pass
            elif op == 'vpxord':
                a, _ = self.vreg(o[0]); b, _ = self.vreg(o[1]); d, _ = self.vreg(o[2])
                self.z[d] = [x ^ y for x, y in zip(self.z[a], self.z[b])]
            elif op in ('vmovups', 'vmovdqu16'):
                if o[0].startswith('%'):  # store
                    s, lanes = self.vreg(o[0])
                    assert lanes == 16 and '{' not in o[1]
                    self.mem.write(self.addr(o[1]), b''.join(d.to_bytes(4, 'little') for d in self.z[s]))
                else:
                    d, lanes, k, zero = self.vdest(o[1])
                    assert lanes == 16
                    base = self.addr(o[0])
                    if op == 'vmovups':
                        out = []
                        for i in range(16):
                            if k is None or self.k[k] >> i & 1:
                                out.append(int.from_bytes(self.mem.read(base + 4 * i, 4), 'little'))
                            else:
                                assert zero; out.append(0)
                        self.z[d] = out
                    else:
                        ws = []
                        for i in range(32):
                            if k is None or self.k[k] >> i & 1:
                                ws.append(int.from_bytes(self.mem.read(base + 2 * i, 2), 'little'))
                            else:
                                assert zero; ws.append(0)
                        self.set_words(d, ws)
            elif op == 'vmovdqa64':
                a, la = self.vreg(o[0]); d, ld = self.vreg(o[1])
                assert la == ld == 16
                self.z[d] = list(self.z[a])
            elif op == 'vpermt2w':  # AT&T: table2, indices, table1 (and destination)
                t2, _ = self.vreg(o[0]); ix, _ = self.vreg(o[1]); d, lanes = self.vdest(o[2])[:2]
                assert lanes == 16 and '{' not in o[2]
                t1, t2w, iw = self.words(d), self.words(t2), self.words(ix)
                self.set_words(d, [(t2w if i & 32 else t1)[i & 31] for i in iw])
            elif op == 'vpbroadcastd':
                d, lanes, k, zero = self.vdest(o[1])
                assert lanes == 16 and k is None
                self.z[d] = [int.from_bytes(self.mem.read(self.addr(o[0]), 4), 'little')] * 16
            elif op == 'vpexpandw':
                d, lanes, k, zero = self.vdest(o[1])
                assert lanes == 16 and k is not None and zero
                base = self.addr(o[0])
                j, ws = 0, []
                for i in range(32):
                    if self.k[k] >> i & 1:
                        ws.append(int.from_bytes(self.mem.read(base + 2 * j, 2), 'little')); j += 1
                    else:
                        ws.append(0)
                self.set_words(d, ws)
            elif op == 'vcvtne2ps2bf16':
                src2, _ = self.vreg(o[0]); src1, _ = self.vreg(o[1]); d, _ = self.vreg(o[2])
                ws = [cvt_bf16(self.z[src2][i]) for i in range(16)] + [cvt_bf16(self.z[src1][i]) for i in range(16)]
                self.set_words(d, ws)
            elif op == 'vdpbf16ps':
                src2, _ = self.vreg(o[0]); src1, _ = self.vreg(o[1]); d, _ = self.vreg(o[2])
                a, b = self.words(src1), self.words(src2)
                out = []
                for i in range(16):
                    acc = bits_to_f32(daz(self.z[d][i]))
                    for j in (2 * i + 1, 2 * i):
                        p = bits_to_f32(daz(a[j] << 16)) * bits_to_f32(daz(b[j] << 16))  # exact in double
                        acc = ftz(f32(acc + p))
                    out.append(f32_to_bits(acc))
                self.z[d] = out
            elif op == 'vaddps':
                a, _ = self.vreg(o[0]); b, _ = self.vreg(o[1]); d, lanes = self.vreg(o[2])
                res = [f32_to_bits(f32(bits_to_f32(self.z[b][i]) + bits_to_f32(self.z[a][i]))) for i in range(lanes)]
                self.z[d] = res + [0] * (16 - lanes)
            elif op == 'vaddss':
                a, _ = self.vreg(o[0]); b, _ = self.vreg(o[1]); d, _ = self.vreg(o[2])
                v = f32_to_bits(f32(bits_to_f32(self.z[b][0]) + bits_to_f32(self.z[a][0])))
                self.z[d] = [v] + self.z[b][1:4] + [0] * 12
            elif op == 'vextractf64x4':
                s, _ = self.vreg(o[1]); d, lanes = self.vreg(o[2])
                assert o[0] == '$0x1' and lanes == 8
                self.z[d] = self.z[s][8:16] + [0] * 8
            elif op == 'vextractf128':
                s, _ = self.vreg(o[1]); d, lanes = self.vreg(o[2])
                assert o[0] == '$0x1' and lanes == 4
                self.z[d] = self.z[s][4:8] + [0] * 12
            elif op == 'vmovhlps':
                src2, _ = self.vreg(o[0]); src1, _ = self.vreg(o[1]); d, _ = self.vreg(o[2])
                self.z[d] = [self.z[src2][2], self.z[src2][3], self.z[src1][2], self.z[src1][3]] + [0] * 12
            elif op == 'vmovshdup':
                s, _ = self.vreg(o[0]); d, _ = self.vreg(o[1])
                v = self.z[s]
                self.z[d] = [v[1], v[1], v[3], v[3]] + [0] * 12
            elif op == 'vmovss':
                s, _ = self.vreg(o[0])
                self.mem.write(self.addr(o[1]), self.z[s][0].to_bytes(4, 'little'))
            else:
                raise NotImplementedError(op + ' ' + ops)


FUNCS = parse_functions()

def f32s(vals):
    return b''.join(struct.pack('<f', v) for v in vals)

def u16s(vals):
    return b''.join(struct.pack('<H', v) for v in vals)

def read_f32(mem, addr, n):
    return list(struct.unpack('<%df' % n, mem.read(addr, 4 * n)))

def bf(h):
    return bits_to_f32(h << 16)

def run(mem, name, args):
    cpu = CPU(mem)
    cpu.run(FUNCS[name], args)
    return cpu

def slice_args(base, length, cap=None):
    return [base, length, length if cap is None else cap]

def check(what, got, wrow, xs, k):
    """got vs Σ w·x (float64) and vs Σ w·bf16(x) within the fp32 bound."""
    exact = sum(w * x for w, x in zip(wrow, xs))
    absum = sum(abs(w * x) for w, x in zip(wrow, xs))
    xr = [bits_to_f32(daz(cvt_bf16(f32_to_bits(x)) << 16)) for x in xs]
    rounded = sum(w * x for w, x in zip(wrow, xr))
    tol32 = (k + 4) * (2 ** -24 * absum * (1 + 2 ** -8) + 2 ** -118)
    tolx = 2 ** -8 * absum + tol32
    if not (abs(got - rounded) <= tol32 and abs(got - exact) <= tolx):
        raise AssertionError('%s: got %r, exact %r, with x in bf16 %r (tol %g, %g)' % (what, got, exact, rounded, tol32, tolx))

def rand_matrix(rng, rows, cols, sparsity):
    w = []
    for _ in range(rows * cols):
        w.append(0.0 if rng.random() < sparsity else f32(rng.gauss(0, 1)))
    return w

def encode_bitmap(w, rows, cols):
    chunks = (cols + 15) // 16
    masks = [0] * (rows * chunks)
    vals, rowptr = [], [0]
    for r in range(rows):
        for j in range(cols):
            v = w[r * cols + j]
            if v != 0:
                masks[r * chunks + j // 16] |= 1 << (j % 16)
                h = rne_bf16_go(v)
                if h & 0x7fff == 0:
                    h = 0x8001 if v < 0 else 1
                vals.append(h)
        rowptr.append(len(vals))
    return chunks, masks, vals, rowptr

def dense_ref(w, rows, cols, bitmap):
    return [bf(rne_bf16_go(v)) if v != 0 else 0.0 for v in w]

def gemv(rng, rows, cols, sparsity, r0, r1, bitmap):
    mem = Mem()
    w = rand_matrix(rng, rows, cols, sparsity)
    wr = dense_ref(w, rows, cols, bitmap)
    x = [f32(rng.gauss(0, 1)) for _ in range(cols)]
    xa = mem.alloc(4 * cols, 'x'); mem.write(xa, f32s(x))
    n32 = (cols + 31) // 32 * 32
    xb = mem.alloc(2 * n32, 'xb', fill=0xAB)
    run(mem, 'packBF16', slice_args(xb, n32) + slice_args(xa, cols))
    # the packed x: rounded values then zeros
    got = struct.unpack('<%dH' % n32, mem.read(xb, 2 * n32))
    for j in range(n32):
        want = cvt_bf16(f32_to_bits(x[j])) if j < cols else 0
        assert got[j] == want, ('packBF16', cols, j, got[j], want)
    n = r1 - r0
    ya = mem.alloc(4 * n, 'y')
    if bitmap:
        chunks, masks, vals, rowptr = encode_bitmap(w, rows, cols)
        ma = mem.alloc(2 * len(masks), 'masks'); mem.write(ma, u16s(masks))
        va = mem.alloc(2 * (len(vals) + 16), 'vals'); mem.write(va, u16s(vals + [0x7fc0] * 16))
        vbase, vlen = va + 2 * rowptr[r0], rowptr[r1] - rowptr[r0]
        run(mem, 'dotBitmapBF16DP', slice_args(ya, n) + slice_args(ma + 2 * r0 * chunks, n * chunks) +
            slice_args(vbase, vlen, len(vals) + 16 - rowptr[r0]) + slice_args(xb, n32) + [chunks])
    else:
        wa = mem.alloc(2 * rows * cols, 'w'); mem.write(wa, u16s([rne_bf16_go(v) for v in w]))
        run(mem, 'dotDenseBF16DP', slice_args(ya, n) + slice_args(wa + 2 * r0 * cols, n * cols) +
            slice_args(xb, n32) + [cols])
    y = read_f32(mem, ya, n)
    for i in range(n):
        r = r0 + i
        check('%s gemv %dx%d rows [%d,%d) row %d' % ('bitmap' if bitmap else 'dense', rows, cols, r0, r1, r),
              y[i], wr[r * cols:(r + 1) * cols], x, cols)

def batch(rng, rows, cols, sparsity, r0, r1, nb, bitmap):
    mem = Mem()
    w = rand_matrix(rng, rows, cols, sparsity)
    wr = dense_ref(w, rows, cols, bitmap)
    chunks = (cols + 15) // 16
    # xT chunk-major, random everywhere (as TestRowKernels), x_b[j] = xT[(j/16*nb+b)*16 + j%16]
    xT = [f32(rng.gauss(0, 1)) for _ in range(chunks * nb * 16)]
    xa = mem.alloc(4 * len(xT), 'xT'); mem.write(xa, f32s(xT))
    nx = (chunks + 1) // 2 * nb * 32
    xb = mem.alloc(2 * nx, 'xb', fill=0xAB)
    run(mem, 'packBF16Batch', slice_args(xb, nx) + slice_args(xa, len(xT)) + [chunks, nb])
    got = struct.unpack('<%dH' % nx, mem.read(xb, 2 * nx))
    for g in range((chunks + 1) // 2):
        for b in range(nb):
            for i in range(32):
                j = 32 * g + i
                c = j // 16
                want = cvt_bf16(f32_to_bits(xT[(c * nb + b) * 16 + j % 16])) if c < chunks else 0
                assert got[(g * nb + b) * 32 + i] == want, ('packBF16Batch', cols, nb, g, b, i)
    n = r1 - r0
    ya = mem.alloc(4 * n * nb, 'yT')
    if bitmap:
        chunks_, masks, vals, rowptr = encode_bitmap(w, rows, cols)
        ma = mem.alloc(2 * len(masks), 'masks'); mem.write(ma, u16s(masks))
        va = mem.alloc(2 * (len(vals) + 16), 'vals'); mem.write(va, u16s(vals + [0x7fc0] * 16))
        run(mem, 'dotBitmapBF16DPx%d' % nb, slice_args(ya, n * nb) + slice_args(ma + 2 * r0 * chunks, n * chunks) +
            slice_args(va + 2 * rowptr[r0], rowptr[r1] - rowptr[r0], len(vals) + 16 - rowptr[r0]) +
            slice_args(xb, nx) + [chunks, n])
    else:
        wa = mem.alloc(2 * rows * cols, 'w'); mem.write(wa, u16s([rne_bf16_go(v) for v in w]))
        run(mem, 'dotDenseBF16DPx%d' % nb, slice_args(ya, n * nb) + slice_args(wa + 2 * r0 * cols, n * cols) +
            slice_args(xb, nx) + [cols, n])
    y = read_f32(mem, ya, n * nb)
    for i in range(n):
        r = r0 + i
        for b in range(nb):
            xs = [xT[(j // 16 * nb + b) * 16 + j % 16] for j in range(cols)]
            check('%s batch nb=%d %dx%d rows [%d,%d) row %d x %d' % ('bitmap' if bitmap else 'dense', nb, rows, cols, r0, r1, r, b),
                  y[i * nb + b], wr[r * cols:(r + 1) * cols], xs, cols)


# The batched product (bf16Gemm in kernels_avx512bf16_amd64.go): the Go
# drivers' calls replayed with the same blocks, spans of columns, arguments
# and slices (in another order: the drivers take blocks of W in groups), every
# slice a region of its own (so the kernels are held to exactly the slices Go
# passes them).
GEMM_N, GEMM_M, GEMM_KC = 12, 32, 1024

def gemm_kpairs(cols, bitmap):
    return (cols + 31) // 32 * 16 if bitmap else (cols + 1) // 2

def region(mem, name, data):
    a = mem.alloc(len(data), name)
    mem.write(a, data)
    return a

def emulate_round(mem, row, width):
    """packBF16 on one row of x into a fresh dst of width values."""
    xa = region(mem, 'xrow', f32s(row))
    dst = mem.alloc(2 * width, 'xrow16', fill=0xAB)
    run(mem, 'packBF16', slice_args(dst, width) + slice_args(xa, len(row)))
    return list(struct.unpack('<%dH' % width, mem.read(dst, 2 * width)))

def emulate_decode(mem, masks, vals, rowptr, chunks, r0, r1, ldd, scratch):
    """decodeBitmapBF16WordsVBMI2: rows [r0, r1) into scratch (a list of words)."""
    n = (r1 - r0 - 1) * ldd + gemm_kpairs(16 * chunks, True) * 2
    dst = region(mem, 'scratch', u16s(scratch[:n]))
    ma = region(mem, 'masks', u16s(masks[r0 * chunks:r1 * chunks]))
    va = region(mem, 'vals', u16s(vals[rowptr[r0]:rowptr[r1]]))
    run(mem, 'decodeBitmapBF16Words', slice_args(dst, n) + slice_args(ma, (r1 - r0) * chunks) +
        slice_args(va, rowptr[r1] - rowptr[r0]) + [r1 - r0, chunks, ldd])
    scratch[:n] = struct.unpack('<%dH' % n, mem.read(dst, 2 * n))

def emulate_tile(mem, xp, w, ldw, kp):
    """gemmBF16Tile on copies of its slices; returns c (GEMM_N x GEMM_M)."""
    c = mem.alloc(4 * GEMM_N * GEMM_M, 'c')
    mem.write(c, struct.pack('<I', 0x7fc00000) * (GEMM_N * GEMM_M))  # NaN: a lane not stored shows
    xa = region(mem, 'xp', struct.pack('<%dI' % len(xp), *xp))
    n = (GEMM_N - 1) * ldw + 2 * kp
    wa = region(mem, 'w', u16s(w[:n]))
    run(mem, 'gemmBF16Tile', slice_args(c, GEMM_N * GEMM_M) + slice_args(xa, len(xp)) + slice_args(wa, n) + [ldw, kp])
    return read_f32(mem, c, GEMM_N * GEMM_M)

def gemm(rng, rows, cols, n, sparsity, bitmap):
    mem = Mem()
    w = rand_matrix(rng, rows, cols, sparsity)
    wr = dense_ref(w, rows, cols, bitmap)
    x = [f32(rng.gauss(0, 1)) for _ in range(n * cols)]
    kp = gemm_kpairs(cols, bitmap)
    # packX
    m_blocks = (n + GEMM_M - 1) // GEMM_M
    width = max((cols + 31) // 32 * 32, 2 * kp)
    xp = [0] * (m_blocks * kp * GEMM_M)
    for i in range(n):
        row = emulate_round(mem, x[i * cols:(i + 1) * cols], width)
        for j in range(width):
            want = cvt_bf16(f32_to_bits(x[i * cols + j])) if j < cols else 0
            assert row[j] == want, ('packBF16', cols, i, j, row[j], want)
        mb, mi = divmod(i, GEMM_M)
        for k in range(kp):
            xp[(mb * kp + k) * GEMM_M + mi] = row[2 * k] | row[2 * k + 1] << 16
    # the rows of W: bitmap decoded into the scratch, dense in place or copied
    scratch = [0] * (GEMM_N * 2 * kp)
    if bitmap:
        chunks, masks, vals, rowptr = encode_bitmap(w, rows, cols)
    else:
        w16 = [rne_bf16_go(v) for v in w]
    y = [None] * (n * rows)
    for b in range((rows + GEMM_N - 1) // GEMM_N):
        r0, r1 = b * GEMM_N, min((b + 1) * GEMM_N, rows)
        if bitmap:
            emulate_decode(mem, masks, vals, rowptr, chunks, r0, r1, 2 * kp, scratch)
            for r in range(r0, r1):  # the decoded rows: bf16 of the weights, zero to 2kp
                got = scratch[(r - r0) * 2 * kp:(r - r0 + 1) * 2 * kp]
                want, k = [0] * (2 * kp), rowptr[r]
                for j in range(cols):
                    if masks[r * chunks + j // 16] >> (j % 16) & 1:
                        want[j] = vals[k]; k += 1
                assert got == want, ('decodeBitmapBF16Words', rows, cols, r)
            wrows, ldw = scratch, 2 * kp
        elif cols % 2 == 0 and r1 - r0 == GEMM_N:
            wrows, ldw = w16[r0 * cols:r1 * cols], cols
        else:
            for r in range(r0, r1):
                scratch[(r - r0) * 2 * kp:(r - r0) * 2 * kp + cols] = w16[r * cols:(r + 1) * cols]
            wrows, ldw = scratch, 2 * kp
        for k0 in range(0, kp, GEMM_KC):
            k1 = min(k0 + GEMM_KC, kp)
            for mb in range(m_blocks):
                c = emulate_tile(mem, xp[(mb * kp + k0) * GEMM_M:(mb * kp + k1) * GEMM_M], wrows[2 * k0:], ldw, k1 - k0)
                for i in range(mb * GEMM_M, min(n, (mb + 1) * GEMM_M)):
                    for j in range(r1 - r0):
                        v = c[j * GEMM_M + i - mb * GEMM_M]
                        y[i * rows + r0 + j] = v if k0 == 0 else f32(y[i * rows + r0 + j] + v)
    for i in range(n):
        for r in range(rows):
            check('%s gemm %dx%d n=%d y[%d,%d]' % ('bitmap' if bitmap else 'dense', rows, cols, n, i, r),
                  y[i * rows + r], wr[r * cols:(r + 1) * cols], x[i * cols:(i + 1) * cols], cols)

# Shapes for the batched product: rows of W with partial blocks of 12, rows
# of x with partial blocks of 32, odd columns and partial groups of 32.
GEMM_SHAPES = [(1, 1, 17), (12, 2, 32), (13, 7, 33), (25, 33, 40), (24, 64, 17), (11, 100, 65), (14, 130, 20)]

PAIRS_IDX = [v for i in range(32) for v in (i, 32 + i)]

def emulate_pairs(mem, wp, k, kp, lo, hi, cols):
    """packPairs for pair k of a panel of kp pairs: the slice of wp Go passes."""
    blocks = (cols + GEMM_M - 1) // GEMM_M
    a, b = k * GEMM_M, ((blocks - 1) * kp + k + 1) * GEMM_M
    dst = region(mem, 'wp', struct.pack('<%dI' % (b - a), *wp[a:b]))
    la, ha = region(mem, 'lo', u16s(lo[:cols])), region(mem, 'hi', u16s(hi[:cols]))
    ia = region(mem, 'idx', u16s(PAIRS_IDX))
    run(mem, 'packPairsBF16', slice_args(dst, b - a) + slice_args(la, cols) + slice_args(ha, cols) +
        slice_args(ia, 64) + [cols, kp * GEMM_M])
    wp[a:b] = struct.unpack('<%dI' % (b - a), mem.read(dst, 4 * (b - a)))

def gemm_mul(rng, rows, cols, n, sparsity, bitmap):
    """Mul (dx = dy W) through bf16Gemm.mul: dy rounded by packBF16, W packed
    in pairs of rows per panel (packW's calls of packPairsBF16), the tiles
    with the rows of dy as the broadcast operand."""
    mem = Mem()
    w = rand_matrix(rng, rows, cols, sparsity)
    wr = dense_ref(w, rows, cols, bitmap)
    dy = [f32(rng.gauss(0, 1)) for _ in range(n * rows)]
    ldy = (rows + 31) // 32 * 32
    j_blocks = (n + GEMM_N - 1) // GEMM_N
    dyb = [0] * (j_blocks * GEMM_N * ldy)
    for i in range(n):
        dyb[i * ldy:(i + 1) * ldy] = emulate_round(mem, dy[i * rows:(i + 1) * rows], ldy)
    if bitmap:
        chunks, masks, vals, rowptr = encode_bitmap(w, rows, cols)
        width = gemm_kpairs(cols, True) * 2
        def row_of(r):
            scratch = [0xdead] * width
            emulate_decode(mem, masks, vals, rowptr, chunks, r, r + 1, 0, scratch)
            return scratch[:cols]
    else:
        w16 = [rne_bf16_go(v) for v in w]
        row_of = lambda r: w16[r * cols:(r + 1) * cols]
    c_blocks = (cols + GEMM_M - 1) // GEMM_M
    dx = [None] * (n * cols)
    for p0 in range(0, rows, 2 * GEMM_KC):
        p1 = min(p0 + 2 * GEMM_KC, rows)
        kp = (p1 - p0 + 1) // 2
        wp = [0xdeadbeef] * (c_blocks * kp * GEMM_M)
        for k in range(kp):
            lo = row_of(p0 + 2 * k)
            hi = row_of(p0 + 2 * k + 1) if p0 + 2 * k + 1 < p1 else [0] * cols
            emulate_pairs(mem, wp, k, kp, lo, hi, cols)
            for c in range(c_blocks * GEMM_M):  # the pair interleaved, zero past cols
                want = lo[c] | hi[c] << 16 if c < cols else 0
                assert wp[(c // GEMM_M * kp + k) * GEMM_M + c % GEMM_M] == want, ('packPairsBF16', rows, cols, p0 + 2 * k, c)
        for jb in range(j_blocks):
            a = dyb[jb * GEMM_N * ldy + p0:jb * GEMM_N * ldy + p0 + (GEMM_N - 1) * ldy + 2 * kp]
            for cb in range(c_blocks):
                c = emulate_tile(mem, wp[cb * kp * GEMM_M:(cb + 1) * kp * GEMM_M], a, ldy, kp)
                for j in range(min(GEMM_N, n - jb * GEMM_N)):
                    for i in range(min(GEMM_M, cols - cb * GEMM_M)):
                        at = (jb * GEMM_N + j) * cols + cb * GEMM_M + i
                        dx[at] = c[j * GEMM_M + i] if p0 == 0 else f32(dx[at] + c[j * GEMM_M + i])
    for i in range(n):
        for c in range(cols):
            check('%s gemm Mul %dx%d n=%d dx[%d,%d]' % ('bitmap' if bitmap else 'dense', rows, cols, n, i, c),
                  dx[i * cols + c], [wr[r * cols + c] for r in range(rows)], dy[i * rows:(i + 1) * rows], rows)

# Shapes for Mul: n past a block of 12 rows of dy, odd rows of W (a zero row
# pairs the last), columns past a block of 32.
MUL_SHAPES = [(1, 1, 17), (7, 33, 17), (30, 65, 25), (13, 100, 40)]

def run_gemms(rng, shapes, mul_shapes=MUL_SHAPES):
    n = 0
    for rows, cols, nx in shapes:
        for bitmap in (False, True):
            gemm(rng, rows, cols, nx, rng.choice([0.0, 0.5, rng.random()]), bitmap)
            n += 1
    for rows, cols, nx in mul_shapes:
        for bitmap in (False, True):
            gemm_mul(rng, rows, cols, nx, rng.choice([0.0, 0.5, rng.random()]), bitmap)
            n += 1
    return n

# Deliberate faults in the machine code of the batched product's kernels,
# each of which the checks above must catch: (function, what, edit of the
# parsed (address, op, operands) list).
def swap_operand(func, i_match, old, new):
    def edit(code):
        hits = [i for i, (_, op, ops) in enumerate(code) if i_match(op, ops)]
        assert hits, ('no instruction to mutate', func, old)
        a, op, ops = code[hits[0]]
        code[hits[0]] = (a, op, ops.replace(old, new, 1))
    return edit

def replace_op(func, i_match, new):
    def edit(code):
        hits = [i for i, (_, op, ops) in enumerate(code) if i_match(op, ops)]
        assert hits, ('no instruction to replace', func)
        a, _, ops = code[hits[0]]
        code[hits[0]] = (a, new, ops)
    return edit

def drop(func, i_match):
    def edit(code):
        hits = [i for i, (_, op, ops) in enumerate(code) if i_match(op, ops)]
        assert hits, ('no instruction to drop', func)
        a, _, _ = code[hits[0]]
        code[hits[0]] = (a, 'nop', '')
    return edit

MUTATIONS = [
    ('gemmBF16Tile', 'one VDPBF16PS takes x rows 16..31 instead of 0..15',
     swap_operand('gemmBF16Tile', lambda op, ops: op == 'vdpbf16ps' and ops.endswith('%zmm10'), '%zmm24', '%zmm25')),
    ('gemmBF16Tile', 'rows 4..7 of W advance by one column instead of a pair',
     swap_operand('gemmBF16Tile', lambda op, ops: op == 'add' and ops == '$0x4,%r11', '$0x4', '$0x2')),
    ('gemmBF16Tile', 'row 3 of W addressed as row 1',
     swap_operand('gemmBF16Tile', lambda op, ops: op == 'lea' and ops == '(%r9,%r9,2),%r10', ',2)', ',1)')),
    ('gemmBF16Tile', 'x advances by one vector per pair instead of two',
     swap_operand('gemmBF16Tile', lambda op, ops: op == 'add' and ops == '$0x80,%rsi', '$0x80', '$0x40')),
    ('gemmBF16Tile', 'the last accumulator is not stored',
     drop('gemmBF16Tile', lambda op, ops: op == 'vmovups' and ops.startswith('%zmm23,'))),
    ('packPairsBF16', 'the second half of a block takes the indices of the first',
     swap_operand('packPairsBF16', lambda op, ops: op == 'vpermt2w' and '%zmm7' in ops, '%zmm7', '%zmm6')),
    ('packPairsBF16', 'the tail mask takes one column too many',
     drop('packPairsBF16', lambda op, ops: op == 'dec' and ops == '%eax')),
    ('decodeBitmapBF16Words', 'a group is stored half a group further than the last',
     swap_operand('decodeBitmapBF16Words', lambda op, ops: op == 'add' and ops == '$0x40,%r11', '$0x40', '$0x20')),
    ('decodeBitmapBF16Words', 'an odd last chunk reads two masks',
     replace_op('decodeBitmapBF16Words', lambda op, ops: op == 'movzwl', 'mov')),
]

def mutate():
    """Runs each mutation on a fresh copy of the kernels and checks that it fails."""
    global FUNCS
    orig = FUNCS
    caught = 0
    for func, what, edit in MUTATIONS:
        FUNCS = dict(orig)
        FUNCS[func] = list(orig[func])
        edit(FUNCS[func])
        try:
            run_gemms(random.Random(7), GEMM_SHAPES)
        except (AssertionError, OOB, RuntimeError) as e:
            print('caught: %s: %s (%s: %s)' % (func, what, type(e).__name__, str(e)[:100]))
            caught += 1
        else:
            print('MISSED: %s: %s' % (func, what))
    FUNCS = orig
    if caught != len(MUTATIONS):
        sys.exit('the emulator missed %d of %d deliberate faults' % (len(MUTATIONS) - caught, len(MUTATIONS)))
    print('ok: %d deliberate faults caught' % caught)

def main():
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    colss = [1, 7, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 127, 128, 129, 130, 144, 255, 256, 257, 300]
    n = 0
    for cols in colss:
        for sp in (0.0, 0.5, 1.0, rng.random()):
            rows = rng.randint(1, 5)
            r0 = rng.randrange(rows); r1 = rng.randint(r0 + 1, rows)
            for bitmap in (False, True):
                gemv(rng, rows, cols, sp, r0, r1, bitmap); n += 1
                nb = rng.choice([4, 8, 12, 16])
                batch(rng, rows, cols, sp, r0, r1, nb, bitmap); n += 1
    # three spans of columns for MulT, two panels of rows for Mul
    n += run_gemms(rng, GEMM_SHAPES + [(13, 2 * GEMM_KC + 57, 17)], MUL_SHAPES + [(2 * GEMM_KC + 5, 3, 17)])
    print('ok: %d kernel calls and batched products emulated' % n)

if __name__ == '__main__':
    if '--mutate' in sys.argv:
        mutate()
    else:
        main()
