#!/usr/bin/env python3
"""Random-weight models for bench_lm in the Hugging Face layout (written by
transformers itself): GPT-2 124M (GPT2Config defaults) and a Llama-
architecture model of about the same size (12 layers, width 768, 12 query
heads, 4 key/value heads, SwiGLU 2048, vocabulary 32000, untied head).

    python bench/make_lm_weights.py OUT_DIR      -> OUT_DIR/gpt2, OUT_DIR/llama
"""
import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "lm-weights"
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(os.path.join(out, "gpt2"))
    cfg = LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048,
                      num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                      max_position_embeddings=2048, tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(os.path.join(out, "llama"))
    print("wrote", os.path.join(out, "gpt2"), os.path.join(out, "llama"))


if __name__ == "__main__":
    main()
