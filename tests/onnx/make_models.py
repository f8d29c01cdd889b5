#!/usr/bin/env python3
"""Writes the small ONNX models test_onnx.c imports (tests/onnx/models/), with
their expected outputs computed here by NumPy (an independent reference):
  mlp.onnx       x[2,4] -> Gemm(4->3) -> Relu -> Gemm(3->2)       mlp.expected
  cnn.onnx       x[1,1,4,4] -> Conv(2,3x3,pad 1) -> Relu -> MaxPool 2 -> Flatten -> MatMul
  dynamic.onnx   x[batch,3] -> MatMul(3x2) + b -> Softmax (dim_param "batch")
  external.onnx  x[2,3] -> MatMul(W in external.bin) -> Tanh
  folded.onnx    x[batch,6] -> Reshape by Add(Constant, Constant) (folded at import)
  softmax11.onnx Softmax of opset 11 (flattens the dims from axis 1 on)
  resize_cubic.onnx x[batch,2,5,6] -> Resize cubic, half_pixel, exclude_outside, scales
                 [1,1,2,1.5] (opset 19; expected values of batch 3 from onnx.reference)
  bad_*.onnx     huge dims, opset 99, Gelu in an opset 17 model, an
                 unsupported operator, external data
                 outside the model's folder (import must fail clearly)
The .expected files hold one line of the output's values (float32 inputs
x = 0.1 * (i % 7) - 0.3 for element i). Run: python3 make_models.py"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
rng = np.random.default_rng(0)


def x_of(shape):
    n = int(np.prod(shape))
    return (0.1 * (np.arange(n) % 7) - 0.3).astype(np.float32).reshape(shape)


def w(*shape):
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def save(name, nodes, inputs, outputs, inits, expected):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="asg-tests")
    m.ir_version = 8
    onnx.save(m, os.path.join(OUT, name + ".onnx"))
    onnx.checker.check_model(os.path.join(OUT, name + ".onnx"))  # finds external data by path
    with open(os.path.join(OUT, name + ".expected"), "w") as f:
        f.write(" ".join(f"{v:.9g}" for v in expected.ravel()) + "\n")


def mlp():
    w1, b1, w2, b2 = w(3, 4), np.abs(w(3)) + 1, w(3, 2), w(2)  # b1 > 0: live ReLUs (training test)
    x = x_of((2, 4))
    y = np.maximum(x @ w1.T + b1, 0) @ w2 + b2
    T = numpy_helper.from_array
    save("mlp", [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
                 helper.make_node("Relu", ["h"], ["r"]),
                 helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])],
         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
         [T(w1, "w1"), T(b1, "b1"), T(w2, "w2"), T(b2, "b2")], y)


def cnn():
    k, kb, fc = w(2, 1, 3, 3), w(2), w(8, 3)
    x = x_of((1, 1, 4, 4))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    c = np.zeros((1, 2, 4, 4), np.float32)
    for o in range(2):
        for i in range(4):
            for j in range(4):
                c[0, o, i, j] = np.sum(xp[0, 0, i:i + 3, j:j + 3] * k[o, 0]) + kb[o]
    r = np.maximum(c, 0)
    p = r.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5))
    y = p.reshape(1, 8) @ fc
    T = numpy_helper.from_array
    save("cnn", [helper.make_node("Conv", ["x", "k", "kb"], ["c"], kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["r"]),
                 helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                 helper.make_node("Flatten", ["p"], ["f"]),
                 helper.make_node("MatMul", ["f", "fc"], ["y"])],
         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
         [T(k, "k"), T(kb, "kb"), T(fc, "fc")], y)


def dynamic():
    wm, b = w(3, 2), w(2)
    x = x_of((5, 3))  # batch 5 in the expected values
    z = x @ wm + b
    e = np.exp(z - z.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    T = numpy_helper.from_array
    save("dynamic", [helper.make_node("MatMul", ["x", "w"], ["z0"]),
                     helper.make_node("Add", ["z0", "b"], ["z"]),
                     helper.make_node("Softmax", ["z"], ["y"], axis=1)],
         [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
         [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
         [T(wm, "w"), T(b, "b")], y)


def external():
    wm = w(3, 4)
    x = x_of((2, 3))
    y = np.tanh(x @ wm)
    t = numpy_helper.from_array(wm, "w")
    with open(os.path.join(OUT, "external.bin"), "wb") as f:
        f.write(b"\0" * 16 + wm.tobytes())  # at offset 16
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "external.bin"), ("offset", "16"), ("length", str(wm.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    save("external", [helper.make_node("MatMul", ["x", "w"], ["m"]),
                      helper.make_node("Tanh", ["m"], ["y"])],
         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [t], y)


def folded():
    """x[batch, 6] reshaped by a shape computed from constants (Add of two
    Constants): the importer folds it while the batch stays symbolic."""
    x = x_of((2, 6))
    c1 = helper.make_node("Constant", [], ["c1"],
                          value=numpy_helper.from_array(np.array([-1, 1, 3], np.int64)))
    c2 = helper.make_node("Constant", [], ["c2"],
                          value=numpy_helper.from_array(np.array([0, 1, 0], np.int64)))
    save("folded", [c1, c2, helper.make_node("Add", ["c1", "c2"], ["shape"]),
                    helper.make_node("Reshape", ["x", "shape"], ["y"])],
         [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
         [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 3])], [],
         x.reshape(-1, 2, 3))


def softmax11():
    """Softmax of opset 11 flattens the dims from axis (1) on: over 6 values
    of x[2, 2, 3], where opset 13 would take the last 3."""
    x = x_of((2, 2, 3))
    f = x.reshape(2, 6)
    e = np.exp(f - f.max(axis=1, keepdims=True))
    y = (e / e.sum(axis=1, keepdims=True)).reshape(2, 2, 3)
    g = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"])], "softmax11",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, "softmax11.onnx"))
    with open(os.path.join(OUT, "softmax11.expected"), "w") as fh:
        fh.write(" ".join(f"{v:.9g}" for v in y.ravel()) + "\n")


def bad():
    """Models the importer must refuse with a clear error (not checked by onnx)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])

    def write(name, nodes, inits, opset=17, inputs=(x,)):
        g = helper.make_graph(nodes, name, list(inputs), [y], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        onnx.save(m, os.path.join(OUT, name + ".onnx"))

    huge = onnx.TensorProto(name="h", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40])
    write("bad_huge", [helper.make_node("Add", ["x", "h"], ["y"])], [huge])
    write("bad_opset", [helper.make_node("Relu", ["x"], ["y"])], [], opset=99)
    write("bad_old_gelu", [helper.make_node("Gelu", ["x"], ["y"], name="g1")], [], opset=17)
    write("bad_op", [helper.make_node("NonMaxSuppression", ["x"], ["y"], name="nms1")], [])
    esc = numpy_helper.from_array(np.zeros(2, np.float32), "e")
    esc.ClearField("raw_data")
    esc.data_location = TensorProto.EXTERNAL
    e = esc.external_data.add()
    e.key, e.value = "location", "../models/external.bin"
    write("bad_escape", [helper.make_node("Add", ["x", "e"], ["y"])], [esc])


def resize_cubic():
    from onnx.reference import ReferenceEvaluator
    x = x_of((3, 2, 5, 6))
    scales = numpy_helper.from_array(np.array([1, 1, 2, 1.5], np.float32), "scales")
    g = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic",
                          coordinate_transformation_mode="half_pixel", exclude_outside=1)],
        "resize_cubic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 5, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 10, 9])], [scales])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)], producer_name="asg-tests")
    m.ir_version = 9
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(OUT, "resize_cubic.onnx"))
    y = ReferenceEvaluator(m).run(None, {"x": x})[0]
    with open(os.path.join(OUT, "resize_cubic.expected"), "w") as f:
        f.write(" ".join(f"{v:.9g}" for v in y.ravel()) + "\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    mlp(), cnn(), dynamic(), external(), folded(), softmax11(), bad(), resize_cubic()
