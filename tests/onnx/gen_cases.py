#!/usr/bin/env python3
"""Writes the ONNX backend node test cases (onnx.backend.test.case.node.
collect_testcases) into OUT/<case>/: model.onnx and test_data_set_0/
input_N.pb, output_N.pb, as the onnx repository's data/node folder has them
(the wheel does not ship that folder). Usage: gen_cases.py OUT"""
import os
import sys
import warnings

import onnx
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases


def main():
    warnings.simplefilter("ignore")  # the generators' own overflow warnings
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = 0
    for case in collect_testcases(None):
        d = os.path.join(out, case.name)
        data = os.path.join(d, "test_data_set_0")
        os.makedirs(data, exist_ok=True)
        onnx.save(case.model, os.path.join(d, "model.onnx"))
        ins, outs = case.data_sets[0]
        for kind, vals, infos in (("input", ins, case.model.graph.input),
                                  ("output", outs, case.model.graph.output)):
            for i, v in enumerate(vals):
                name = infos[i].name if i < len(infos) else ""
                if isinstance(v, onnx.TensorProto):  # e.g. the Cast cases' exotic types
                    t = v
                else:
                    try:
                        t = numpy_helper.from_array(v, name)
                    except Exception:  # sequences, optionals, maps
                        continue
                with open(os.path.join(data, f"{kind}_{i}.pb"), "wb") as f:
                    f.write(t.SerializeToString())
        n += 1
    print(f"{n} node cases written to {out}")


if __name__ == "__main__":
    main()
