#!/usr/bin/env python3
"""The last leg of the round trip of docs/onnx.md: test_onnx_torch imported
the PyTorch CNN (tests/onnx/models/torch_cnn.onnx), trained it for a few
steps in ASG and exported it with asg_onnx_export to DIR/cnn_trained.onnx,
leaving the input (cnn_trained.x.bin, float32 [16,1,28,28]) and ASG's
output (cnn_trained.y.bin, float32 [16,10]) beside it. This checks the file
with onnx.checker and runs it in onnxruntime (CPU, at batch 16 and at batch 3
through the dynamic axis) against ASG's outputs (atol 1e-4, rtol 1e-4).
Exit 77 when onnx, onnxruntime or numpy is missing, unless ASG_REQUIRE_ONNX
is set (CI).

    check_roundtrip.py DIR
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
    path = os.path.join(d, "cnn_trained.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    x = np.fromfile(os.path.join(d, "cnn_trained.x.bin"), dtype=np.float32).reshape(16, 1, 28, 28)
    want = np.fromfile(os.path.join(d, "cnn_trained.y.bin"), dtype=np.float32).reshape(16, 10)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    print(f"{path}: input {inp.name} {inp.shape}, output "
          f"{sess.get_outputs()[0].name} {sess.get_outputs()[0].shape}")
    bad = 0
    for b in (16, 3):
        (got,) = sess.run(None, {inp.name: x[:b]})
        err = float(np.max(np.abs(got - want[:b])))
        ok = np.allclose(got, want[:b], atol=1e-4, rtol=1e-4)
        print(f"batch {b:2d}: onnxruntime vs ASG max |diff| {err:.2e} {'ok' if ok else 'FAIL'}")
        bad += not ok
    acc = float(np.mean(np.argmax(want, 1) == np.arange(16) * 7 % 10))
    print(f"training-batch accuracy of the exported model: {acc:.2f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
