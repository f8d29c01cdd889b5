#!/usr/bin/env python3
"""Exports real PyTorch models with torch.onnx.export and records PyTorch's
outputs, for tests/test_onnx_torch.c (which imports them into ASG) and the
benchmark (bench/onnx_ort.py). Run by hand; the files are committed and CI
does not need torch:

    /work/venv/bin/python tests/onnx/make_torch_models.py   # torch + transformers

writes tests/onnx/models/:
  torch_cnn.onnx          x[batch,1,28,28] -> Conv 3x3 (8) -> BatchNorm -> ReLU ->
                          MaxPool 2 -> Conv 3x3 (16) -> ReLU -> MaxPool 2 ->
                          x.view(x.size(0), -1) -> Linear 784->32 -> ReLU -> Linear 32->10
  torch_transformer.onnx  ids[batch,seq] (int64) -> Embedding 64x32 + learned
                          positions (sliced to seq) -> 2 pre-norm encoder layers (d 32,
                          4 heads, GELU MLP 64) -> LayerNorm -> Linear 32->8
  torch_gpt2.onnx         tests/fixtures/hf/tiny-gpt2 (transformers' GPT2LMHeadModel,
                          eager attention): input_ids, attention_mask [batch,seq] -> logits
and torch_<name>.expected with two cases each (two batch sizes; two
sequence lengths for the transformers). The exporter is the TorchScript one
(dynamo=False: the torch.export-based one needs onnxscript), opset 17, with
dynamic axes "batch" (and "seq"). The .expected format, one token per
whitespace-separated word:

    case <n_inputs> <n_outputs>
    input <name> <f32|i64> <rank> <dims...> <values...>
    output <name> <rank> <dims...> <values...>      (float32 values)
"""
import math
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models")
GPT2 = os.path.join(HERE, "..", "fixtures", "hf", "tiny-gpt2")


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = torch.nn.Linear(16 * 7 * 7, 32)
        self.fc2 = torch.nn.Linear(32, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)  # Shape -> Gather -> Concat -> Reshape on the dynamic batch
        return self.fc2(torch.relu(self.fc1(x)))


class Block(torch.nn.Module):
    """A pre-norm encoder layer written out (torch's nn.MultiheadAttention
    exports the traced sequence length into its reshapes: the model would
    only run at that length)."""

    def __init__(self, d=32, heads=4, ff=64):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.fc1, self.fc2 = torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(C // self.heads), dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(64, 32)
        self.pos = torch.nn.Parameter(torch.randn(1, 16, 32) * 0.1)
        self.blocks = torch.nn.ModuleList([Block(), Block()])
        self.ln = torch.nn.LayerNorm(32)
        self.head = torch.nn.Linear(32, 8)

    def forward(self, ids):
        h = self.emb(ids) + self.pos[:, : ids.shape[1]]  # Slice to the dynamic seq
        for b in self.blocks:
            h = b(h)
        return self.head(self.ln(h))


class GPT2Logits(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def randomize(m, gen):
    """Fresh values for every parameter and buffer (BatchNorm's statistics
    start at 0 and 1; LayerNorm's weights at 1)."""
    with torch.no_grad():
        for name, p in list(m.named_parameters()) + list(m.named_buffers()):
            if not p.is_floating_point():
                continue
            if name.endswith("running_var"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.dim() > 1 else 0.1))


def fmt(a):
    return " ".join(f"{v:.9g}" for v in np.asarray(a, dtype=np.float64).ravel())


def write_case(f, inputs, outputs):
    f.write(f"case {len(inputs)} {len(outputs)}\n")
    for name, t in inputs:
        a = t.numpy()
        kind = "i64" if a.dtype == np.int64 else "f32"
        vals = " ".join(str(int(v)) for v in a.ravel()) if kind == "i64" else fmt(a)
        f.write(f"input {name} {kind} {a.ndim} {' '.join(map(str, a.shape))}\n{vals}\n")
    for name, t in outputs:
        a = t.detach().numpy().astype(np.float32)
        f.write(f"output {name} {a.ndim} {' '.join(map(str, a.shape))}\n{fmt(a)}\n")


def export(name, model, example, input_names, output_names, dyn, cases):
    path = os.path.join(OUT, f"torch_{name}.onnx")
    with torch.no_grad():  # before the export, which may leave the model changed
        ys = [model(*inputs) for inputs in cases]
    torch.onnx.export(model, example, path, dynamo=False, opset_version=17,
                      input_names=input_names, output_names=output_names, dynamic_axes=dyn,
                      do_constant_folding=True)
    with open(os.path.join(OUT, f"torch_{name}.expected"), "w") as f:
        for inputs, y in zip(cases, ys):
            write_case(f, list(zip(input_names, inputs)), [(output_names[0], y)])
    print(f"{path}: {os.path.getsize(path)} bytes")


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)

    cnn = CNN()
    randomize(cnn, gen)
    cnn.eval()
    x = lambda b: torch.randn(b, 1, 28, 28, generator=gen)
    export("cnn", cnn, (x(2),), ["x"], ["y"], {"x": {0: "batch"}, "y": {0: "batch"}},
           [(x(1),), (x(3),)])

    enc = Encoder()
    randomize(enc, gen)
    enc.eval()
    ids = lambda b, s: torch.randint(0, 64, (b, s), generator=gen)
    export("transformer", enc, (ids(2, 7),), ["ids"], ["y"],
           {"ids": {0: "batch", 1: "seq"}, "y": {0: "batch", 1: "seq"}},
           [(ids(1, 5),), (ids(3, 9),)])

    from transformers import GPT2LMHeadModel

    gpt = GPT2Logits(GPT2LMHeadModel.from_pretrained(GPT2, attn_implementation="eager").eval())
    tok = lambda b, s: torch.randint(0, 512, (b, s), generator=gen)
    mask2 = torch.ones(2, 6, dtype=torch.int64)
    mask2[1, :2] = 0  # left padding in the second row
    export("gpt2", gpt, (tok(2, 7), torch.ones(2, 7, dtype=torch.int64)),
           ["input_ids", "attention_mask"], ["logits"],
           {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "logits": {0: "batch", 1: "seq"}},
           [(tok(1, 4), torch.ones(1, 4, dtype=torch.int64)), (tok(2, 6), mask2)])


if __name__ == "__main__":
    main()
