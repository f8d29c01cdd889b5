#!/usr/bin/env python3
"""Runs the ONNX backend node cases (written by gen_cases.py) through ASG's
importer on the CPU (libasg through ctypes) and compares the outputs with
the expected ones (rtol 1e-3, atol 1e-7 for floats as onnx's backend test,
bfloat16 with rtol 2^-6 as there; integers and bools exactly). The narrow
types (float16, bfloat16, float8, float4, int4/int2, uint64 below 2^63) are
fed widened to the dtype ASG holds them in, which is exact; float16 and
bfloat16 outputs are converted back to their type before the comparison (as
a caller does). Writes a Markdown table per operator (passed / failed /
unsupported) and the list of passing cases.

  run_cases.py LIBASG CASES_DIR TABLE.md [--baseline tests/onnx/supported.txt]
               [--update-baseline] [--doc docs/onnx.md] [-k SUBSTRING]

Exit 1 if a case listed in the baseline ("OpName case_name" lines) does not
pass now. Each case runs in a forked child, so a crash fails only that case.
Integer-typed graph inputs of rank <= 1 are frozen at import (asg_onnx_
import_opts.const_inputs): ASG needs shapes, axes and indices when it
builds the graph; a case whose import still asks for a known input is
retried with every input of rank <= 1 frozen (e.g. a float OneHot depth)."""
import ctypes as C
import os
import pickle
import sys
from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper

ASG_F32, ASG_F64, ASG_I32, ASG_I64 = 0, 1, 2, 3
NP = {ASG_F32: np.float32, ASG_F64: np.float64, ASG_I32: np.int32, ASG_I64: np.int64}
ERR_UNSUPPORTED = 8


class Shape(C.Structure):
    _fields_ = [("ndim", C.c_int), ("dims", C.c_int64 * 8)]


class Host(C.Structure):
    _fields_ = [("dtype", C.c_int), ("shape", Shape), ("data", C.c_void_p)]


class ConstInput(C.Structure):
    _fields_ = [("name", C.c_char_p), ("value", Host)]


class Opts(C.Structure):
    _fields_ = [("initializers_as_constants", C.c_bool), ("variable_prefix", C.c_char_p),
                ("n_const_inputs", C.c_int), ("const_inputs", C.POINTER(ConstInput)),
                ("max_file_bytes", C.c_uint64), ("max_tensor_bytes", C.c_uint64),
                ("max_nodes", C.c_int64)]


def load(lib_path):
    lib = C.CDLL(lib_path)
    vp = C.c_void_p
    sig = {
        "asg_graph_new": ([], vp), "asg_graph_free": ([vp], None),
        "asg_onnx_import": ([vp, C.c_char_p, C.POINTER(Opts), C.POINTER(vp)], C.c_int),
        "asg_onnx_model_free": ([vp], None),
        "asg_onnx_model_output_count": ([vp], C.c_int),
        "asg_onnx_model_output": ([vp, C.c_int], vp),
        "asg_onnx_model_input_count": ([vp], C.c_int),
        "asg_onnx_model_input_name": ([vp, C.c_int], C.c_char_p),
        "asg_compile": ([vp, C.c_int, C.POINTER(vp), vp], vp),
        "asg_program_free": ([vp], None),
        "asg_program_feed_tensor": ([vp, C.c_char_p, C.c_int, Shape, vp], C.c_int),
        "asg_program_run": ([vp], C.c_int),
        "asg_program_fetch": ([vp, vp, vp, C.c_size_t], C.c_int),
        "asg_tensor_shape": ([vp], Shape), "asg_tensor_dtype": ([vp], C.c_int),
        "asg_last_error": ([], C.c_char_p),
    }
    for name, (args, res) in sig.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = args, res
    return lib


# ONNX types that ASG holds in a wider dtype with the same values (docs/onnx.md,
# "Element types"): the narrow floats as F32, the small integers as I32.
NARROW_FLOATS = {"float16", "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                 "float8_e5m2fnuz", "float4_e2m1fn", "float8_e8m0fnu"}
SMALL_INTS = {"int4", "uint4", "int2", "uint2"}


def asg_dtype(a):
    """(ASG dtype, the values as that dtype, exactly), or (None, a)."""
    if a.dtype == np.float32: return ASG_F32, a
    if a.dtype == np.float64: return ASG_F64, a
    if a.dtype.name in NARROW_FLOATS: return ASG_F32, a.astype(np.float32)
    if a.dtype == np.int64 or a.dtype == np.uint32: return ASG_I64, a.astype(np.int64)
    if a.dtype == np.uint64 and (a.size == 0 or a.max() <= np.iinfo(np.int64).max):
        return ASG_I64, a.astype(np.int64)  # uint64 values below 2^63 only
    if a.dtype in (np.int32, np.int16, np.int8, np.uint8, np.uint16, np.bool_):
        return ASG_I32, a.astype(np.int32)
    if a.dtype.name in SMALL_INTS: return ASG_I32, a.astype(np.int32)
    return None, a


def dtype_why(a):
    if a.dtype == np.uint64: return "uint64 above 2^63-1"
    return str(a.dtype)


def shape_of(a):
    s = Shape()
    s.ndim = a.ndim
    for i, d in enumerate(a.shape): s.dims[i] = d
    return s


def run_case(lib, d):
    """('pass'|'fail'|'unsupported', message)"""
    res = run_case_frozen(lib, d, freeze_all_small=False)
    if res[0] == "unsupported" and "must be known at import time" in res[1]:
        res = run_case_frozen(lib, d, freeze_all_small=True)  # e.g. a float OneHot depth
    return res


def run_case_frozen(lib, d, freeze_all_small):
    model = onnx.load(os.path.join(d, "model.onnx"))
    data = os.path.join(d, "test_data_set_0")
    ins, outs = [], []
    for kind, lst, infos in (("input", ins, model.graph.input), ("output", outs, model.graph.output)):
        for i in range(len(infos)):
            p = os.path.join(data, f"{kind}_{i}.pb")
            if not os.path.exists(p): return "unsupported", f"{kind} {i} is not a tensor"
            t = onnx.TensorProto()
            with open(p, "rb") as f: t.ParseFromString(f.read())
            try:
                lst.append(numpy_helper.to_array(t))
            except Exception:  # element types NumPy lacks
                return "unsupported", f"{kind} {i}: element type {t.data_type}"
    init = {t.name for t in model.graph.initializer}
    feeds, consts, keep = [], [], []
    for vi, a in zip([v for v in model.graph.input if v.name not in init], ins):
        dims = [d.dim_value if d.HasField("dim_value") else -1
                for d in vi.type.tensor_type.shape.dim]
        if -1 not in dims and int(np.prod(dims)) == a.size:
            a = a.reshape(dims)  # e.g. a scalar input stored as [1]
        dt, a = asg_dtype(np.require(a, requirements="C"))
        if dt is None: return "unsupported", f"input dtype {dtype_why(a)}"
        a = np.require(a, requirements="C")
        keep.append(a)
        if (dt in (ASG_I32, ASG_I64) or freeze_all_small) and a.ndim <= 1:
            ci = ConstInput(vi.name.encode(), Host(dt, shape_of(a), a.ctypes.data))
            consts.append(ci)
        else:
            feeds.append((vi.name, dt, a))
    for e in outs:
        if asg_dtype(e)[0] is None: return "unsupported", f"output dtype {dtype_why(e)}"
    opts = Opts()
    arr = (ConstInput * max(1, len(consts)))(*consts)
    opts.n_const_inputs, opts.const_inputs = len(consts), arr
    g = lib.asg_graph_new()
    m = C.c_void_p()
    st = lib.asg_onnx_import(g, os.path.join(d, "model.onnx").encode(), C.byref(opts), C.byref(m))
    if st:
        msg = lib.asg_last_error().decode(errors="replace")
        lib.asg_graph_free(g)
        return ("unsupported" if st == ERR_UNSUPPORTED else "fail"), msg
    no = lib.asg_onnx_model_output_count(m)
    ts = (C.c_void_p * no)(*[lib.asg_onnx_model_output(m, i) for i in range(no)])
    p = lib.asg_compile(g, no, ts, None)
    try:
        if not p: return "fail", "compile: " + lib.asg_last_error().decode(errors="replace")
        for name, dt, a in feeds:
            if lib.asg_program_feed_tensor(p, name.encode(), dt, shape_of(a), a.ctypes.data):
                msg = lib.asg_last_error().decode(errors="replace")
                if "has no input named" not in msg:  # an input the outputs do not need is fine
                    return "fail", "feed: " + msg
        if lib.asg_program_run(p): return "fail", "run: " + lib.asg_last_error().decode(errors="replace")
        for i, e in enumerate(outs):
            s = lib.asg_tensor_shape(ts[i])
            shp = tuple(s.dims[k] for k in range(s.ndim))
            if shp != e.shape: return "fail", f"output {i}: shape {shp}, expected {e.shape}"
            got = np.empty(shp, NP[lib.asg_tensor_dtype(ts[i])])
            if lib.asg_program_fetch(p, ts[i], got.ctypes.data, got.nbytes):
                return "fail", "fetch: " + lib.asg_last_error().decode(errors="replace")
            if e.dtype.name in ("float16", "bfloat16"):  # back to the model's type, as a
                got = got.astype(e.dtype)                  # caller does (asg_convert)
            if e.dtype == np.bool_:
                ok = np.array_equal(got != 0, e)
            elif np.issubdtype(e.dtype, np.floating) or e.dtype.name in NARROW_FLOATS:
                # onnx's backend test: bfloat16 within two of its ulps
                rtol = 2.0**-6 if e.dtype.name == "bfloat16" else 1e-3
                ok = np.allclose(got.astype(np.float64), e.astype(np.float64), rtol=rtol,
                                 atol=1e-7, equal_nan=True)
            else:
                ok = np.array_equal(got.astype(np.int64), e.astype(np.int64))
            if not ok:
                diff = np.max(np.abs(got.astype(np.float64) - e.astype(np.float64))) if got.size else 0
                return "fail", f"output {i}: values differ (max abs diff {diff:.3g})"
        return "pass", ""
    finally:
        if p: lib.asg_program_free(p)
        lib.asg_onnx_model_free(m)
        lib.asg_graph_free(g)


def forked(lib, d):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            res = run_case(lib, d)
        except Exception as e:  # a runner problem is a failure of that case
            res = ("fail", f"runner: {e!r}")
        os.write(w, pickle.dumps(res))
        os._exit(0)
    os.close(w)
    buf = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk: break
        buf += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not buf: return "fail", f"crashed (wait status {status})"
    return pickle.loads(buf)


def reason_of(msg):
    """The reason in an ASG_ERR_UNSUPPORTED message, without names and numbers."""
    import re
    m = msg.split("): ", 1)[-1] if "): " in msg else msg
    m = re.sub(r"'[^']*'", "'...'", m)
    m = re.sub(r"onnx import: ", "", m)
    m = re.sub(r"dim \d+ is", "dim N is", m)
    return m[:100]


def op_of(d):
    m = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
    ops = sorted({n.op_type for n in m.graph.node})
    return ops[0] if len(m.graph.node) == 1 else "(multi-node: " + ",".join(ops)[:40] + ")", ops


def main():
    args = sys.argv[1:]
    lib_path, cases, table = args[0], args[1], args[2]
    baseline = args[args.index("--baseline") + 1] if "--baseline" in args else None
    sub = args[args.index("-k") + 1] if "-k" in args else ""
    lib = load(lib_path)
    asg_sup = lib.asg_onnx_op_supported
    asg_sup.argtypes, asg_sup.restype = [C.c_char_p, C.c_int64], C.c_bool
    rows = defaultdict(lambda: [0, 0, 0])
    passed, failures = [], []
    claimed = claimed_pass = claimed_fail = 0
    reasons = defaultdict(int)  # why cases of mapped operators were refused
    for name in sorted(os.listdir(cases)):
        if sub not in name: continue
        d = os.path.join(cases, name)
        op, ops = op_of(d)
        res, msg = forked(lib, d)
        rows[op][{"pass": 0, "fail": 1, "unsupported": 2}[res]] += 1
        mine = all(asg_sup(o.encode(), 23) for o in ops)
        if mine:
            claimed += 1
            claimed_pass += res == "pass"
            claimed_fail += res == "fail"
        if res == "pass": passed.append(f"{op} {name}")
        elif res == "fail": failures.append(f"FAIL {name}: {msg[:300]}")
        elif mine:
            failures.append(f"UNSUPPORTED {name}: {msg[:200]}")
            reasons[reason_of(msg)] += 1
    pct = 100.0 * claimed_pass / claimed if claimed else 0.0
    tot = [sum(r[i] for r in rows.values()) for i in range(3)]
    imported = tot[0] + tot[1]
    ipct = 100.0 * tot[0] / imported if imported else 0.0
    lines = [f"onnx {onnx.__version__}: {sum(tot)} node cases; passed {tot[0]}, failed {tot[1]}, "
             f"unsupported {tot[2]}.", "",
             f"- Cases ASG imports (it claims them): {imported}, of which {tot[0]} pass "
             f"({ipct:.1f}%).",
             f"- Cases whose operators are all in ASG's table: {claimed}, of which {claimed_pass} "
             f"pass ({pct:.1f}%) and {claimed_fail} fail; the others are refused with "
             f"ASG_ERR_UNSUPPORTED, for these reasons:", ""]
    for r, k in sorted(reasons.items(), key=lambda x: (-x[1], x[0])):
        lines.append(f"  - {k}: {r}")
    lines += ["", "| operator | passed | failed | unsupported |", "|---|---|---|---|"]
    for op in sorted(rows):
        p_, f_, u_ = rows[op]
        lines.append(f"| {op} | {p_} | {f_} | {u_} |")
    text = "\n".join(lines) + "\n"
    with open(table, "w") as f:
        f.write(text)
    if "--doc" in args:  # replace the table in docs/onnx.md between its markers
        doc = args[args.index("--doc") + 1]
        d = open(doc).read()
        a, b = "<!-- onnx-table -->\n", "<!-- /onnx-table -->"
        if a in d and b in d:
            d = d[:d.index(a) + len(a)] + text + d[d.index(b):]
            open(doc, "w").write(d)
    with open(table + ".failures.txt", "w") as f:
        f.write("\n".join(failures) + "\n")
    print(f"{sum(tot)} cases: {tot[0]} passed, {tot[1]} failed, {tot[2]} unsupported; "
          f"{claimed_pass}/{claimed} ({pct:.1f}%) of the cases of mapped operators pass")
    if "--update-baseline" in args and baseline:
        with open(baseline, "w") as f:
            f.write("# ONNX node cases that pass through ASG (\"operator case\"); test_onnx_conformance\n"
                    "# fails when one of them stops passing. Written by run_cases.py "
                    "--update-baseline.\n")
            f.write("\n".join(sorted(passed)) + "\n")
        return 0
    if baseline:
        want = [l.strip() for l in open(baseline) if l.strip() and not l.startswith("#")]
        now = set(passed)
        lost = [w for w in want if w not in now and (not sub or sub in w)]
        for w in lost: print("REGRESSION:", w)
        if lost: return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
