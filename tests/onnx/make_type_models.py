#!/usr/bin/env python3
"""Writes tests/onnx/models/cast_f16.onnx for tests/test_onnx_types.c (run by
hand; the model is committed): a float16 input x [4], a float16 initializer
w [4] and y = Cast(x * w, to=FLOAT16), a float16 output. ASG holds float16 in
F32; the test checks the Cast's rounding (ties to even, overflow to inf),
the decoded initializer and the gradient through the Cast."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "models")
    w = numpy_helper.from_array(np.array([1 + 2**-10, 1 / 3, 1.5, 2], np.float16), "w")
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["p"]),
         helper.make_node("Cast", ["p"], ["y"], to=TensorProto.FLOAT16)],
        "cast_f16", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [4])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="asg-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(out, "cast_f16.onnx"))


if __name__ == "__main__":
    main()
