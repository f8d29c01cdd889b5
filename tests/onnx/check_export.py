#!/usr/bin/env python3
"""Checks the models that test_onnx_export wrote (DIR/manifest.txt): each
passes onnx.checker (with shape inference) and onnxruntime's outputs equal
ASG's (DIR/<model>.<output>.bin, float32 raw). Exit 77 when onnx,
onnxruntime or numpy is missing, unless ASG_REQUIRE_ONNX is set (CI).

    check_export.py DIR
"""
import os
import sys


def main():
    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        print(f"skipped: {e}")
        return 1 if os.environ.get("ASG_REQUIRE_ONNX") else 77
    d = sys.argv[1]
    models, cur = [], None
    with open(os.path.join(d, "manifest.txt")) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "model":
                cur = {"name": w[1], "inputs": [], "outputs": []}
                models.append(cur)
            else:
                assert w[2] == "f32", line
                cur[w[0] + "s"].append((w[1], [int(v) for v in w[3:]]))
    if not models:
        print(f"no models in {d}/manifest.txt")
        return 1
    bad = 0
    for m in models:
        name = m["name"]
        path = os.path.join(d, name + ".onnx")
        model = onnx.load(path)
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # the checker's own exception types vary by version
            print(f"FAIL {name}: onnx.checker: {e}")
            bad += 1
            continue

        def load(n, shape):
            a = np.fromfile(os.path.join(d, f"{name}.{n}.bin"), dtype=np.float32)
            return a.reshape(shape)

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feeds = {n: load(n, s) for n, s in m["inputs"]}
        names = [n for n, _ in m["outputs"]]
        got = sess.run(names, feeds)
        for (n, s), g in zip(m["outputs"], got):
            want = load(n, s)
            if g.shape != want.shape or not np.allclose(g, want, atol=1e-5, rtol=1e-4):
                err = np.abs(g - want).max() if g.shape == want.shape else "shape"
                print(f"FAIL {name}.{n}: onnxruntime {g.shape} vs ASG {want.shape}, max err {err}")
                bad += 1
            else:
                print(f"ok {name}.{n} {list(g.shape)}")
        dims = [dd.dim_param or dd.dim_value for dd in
                model.graph.input[0].type.tensor_type.shape.dim]
        print(f"   {name}: opset {model.opset_import[0].version}, input dims {dims}, "
              f"{len(model.graph.node)} nodes")
    print(f"{len(models)} models checked, {bad} failure(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
