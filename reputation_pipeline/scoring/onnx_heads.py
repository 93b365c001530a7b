"""A heads bundle served by ONNX Runtime: the CPU engine, and the reason the default
install needs no torch.

The graph is built here from the weights (the encoder's ``model.safetensors`` with
the bundle's LoRA update merged in, then the pooling and every task's head, logit
bias and softmax), so there is no export step and no exported file to keep in step
with the bundle. It computes what the torch path computes (scoring/encoder.py,
heads.py: a BERT-style encoder with absolute positions and exact-erf GELU) in
float32; ``reputation_pipeline_tests/test_scoring_onnx.py`` holds it to the torch
path's probabilities within 1e-3.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reputation_pipeline.scoring.batching import padded_batches
from reputation_pipeline.scoring.bundle import adapter_arrays, head_arrays

OPSET = 17  # the first with LayerNormalization
_MASKED = -1e9  # added to the attention scores of padding (its softmax weight is 0)


def merge_lora(weights: dict[str, np.ndarray], adapter: dict[str, np.ndarray], alpha: float,
               rank: int) -> dict[str, np.ndarray]:
    """``W + (alpha / rank) * B @ A`` for each adapted Linear and the adapter's
    LayerNorms in place of the encoder's (scoring/adapters.py merge_adapter, on
    arrays). A name the encoder does not have is an error, not skipped."""
    out = dict(weights)
    scale = alpha / rank
    for key in sorted(adapter):
        path, _, kind = key.rpartition(".")
        if kind == "lora_B":
            continue
        if kind == "lora_A":
            w = weights.get(f"{path}.weight")
            if w is None or w.ndim != 2:
                raise ValueError(f"adapter names {path!r}, which is not a Linear layer of this encoder")
            out[f"{path}.weight"] = (w + adapter[f"{path}.lora_B"] @ adapter[key] * scale).astype(np.float32)
        elif kind in ("weight", "bias"):
            if not path.endswith("LayerNorm") or key not in weights:
                raise ValueError(f"adapter names {path!r}, which is not a LayerNorm of this encoder")
            out[key] = adapter[key]
        else:
            raise ValueError(f"unexpected adapter tensor {key!r}")
    return out


class _Builder:
    def __init__(self):
        self.nodes: list = []
        self.initializers: list = []
        self._n = 0

    def const(self, value, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = f"c{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.array(value, dtype=dtype, order="C"), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        from onnx import helper

        self._n += 1
        out = f"{op_type.lower()}{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
        # torch's Linear stores [out, in]; MatMul wants [in, out]
        return self.op("Add", self.op("MatMul", x, self.const(weight.T)), self.const(bias))

    def layer_norm(self, x: str, weight: np.ndarray, bias: np.ndarray, eps: float) -> str:
        return self.op("LayerNormalization", x, self.const(weight), self.const(bias), axis=-1, epsilon=eps)

    def gelu(self, x: str) -> str:
        # exact GELU, 0.5 x (1 + erf(x / sqrt 2)): torch's nn.GELU() and BERT's "gelu"
        erf = self.op("Erf", self.op("Mul", x, self.const(1.0 / math.sqrt(2.0))))
        return self.op("Mul", self.op("Mul", x, self.const(0.5)), self.op("Add", erf, self.const(1.0)))


def build_graph(config: dict, weights: dict[str, np.ndarray], features: Sequence[str],
                heads: dict[str, dict[str, np.ndarray]], biases: dict[str, Sequence[float]]):
    """The ONNX model: inputs ``input_ids``/``attention_mask`` (int64 [batch, tokens]),
    one output ``probs.<task>`` (float32 [batch, labels]) per head."""
    from onnx import TensorProto, helper

    if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("the ONNX engine serves BERT-style encoders with absolute positions; "
                         f"got model_type={config.get('model_type')!r} (install the torch extra for others)")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported hidden_act {config.get('hidden_act')!r}")
    d, n_heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    head_dim, eps = d // n_heads, float(config.get("layer_norm_eps", 1e-12))
    g = _Builder()
    w = weights
    ids, mask_in = "input_ids", "attention_mask"

    # embeddings: word + position + token type 0 (the torch path passes zeros)
    tokens = g.op("Shape", ids, start=1, end=2)
    positions = g.op("Slice", g.const(w["embeddings.position_embeddings.weight"]), g.const([0], np.int64), tokens,
                     g.const([0], np.int64))
    x = g.op("Add", g.op("Add", g.op("Gather", g.const(w["embeddings.word_embeddings.weight"]), ids), positions),
             g.const(w["embeddings.token_type_embeddings.weight"][0]))
    x = g.layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    hidden = [x]

    mask = g.op("Cast", mask_in, to=TensorProto.FLOAT)
    attn_bias = g.op("Unsqueeze", g.op("Mul", g.op("Sub", g.const(1.0), mask), g.const(_MASKED)),
                     g.const([1, 2], np.int64))  # [batch, 1, 1, tokens]
    split = g.const([0, 0, n_heads, head_dim], np.int64)
    merge = g.const([0, 0, d], np.int64)
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."

        def proj(name: str) -> str:
            return g.op("Reshape", g.linear(x, w[p + name + ".weight"], w[p + name + ".bias"]), split)

        q = g.op("Transpose", proj("attention.self.query"), perm=[0, 2, 1, 3])
        k = g.op("Transpose", proj("attention.self.key"), perm=[0, 2, 3, 1])
        v = g.op("Transpose", proj("attention.self.value"), perm=[0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), g.const(1.0 / math.sqrt(head_dim))), attn_bias)
        ctx = g.op("Reshape", g.op("Transpose", g.op("MatMul", g.op("Softmax", scores, axis=-1), v), perm=[0, 2, 1, 3]),
                   merge)
        attn = g.linear(ctx, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"])
        x = g.layer_norm(g.op("Add", attn, x), w[p + "attention.output.LayerNorm.weight"],
                         w[p + "attention.output.LayerNorm.bias"], eps)
        ff = g.gelu(g.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
        ff = g.linear(ff, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
        x = g.layer_norm(g.op("Add", ff, x), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        hidden.append(x)

    # pooling (encoder.pool): masked mean, or the first token, of a layer's states
    m = g.op("Unsqueeze", mask, g.const([2], np.int64))
    denom = g.op("Max", g.op("ReduceSum", m, g.const([1], np.int64), keepdims=0), g.const(1.0))
    pooled = []
    for f in features:
        kind, layer = f.split(":")
        h = hidden[int(layer)]
        if kind == "mean":
            pooled.append(g.op("Div", g.op("ReduceSum", g.op("Mul", h, m), g.const([1], np.int64), keepdims=0), denom))
        elif kind == "cls":
            pooled.append(g.op("Gather", h, g.const(0, np.int64), axis=1))
        else:
            raise ValueError(f"unknown feature {f!r}")
    feats = pooled[0] if len(pooled) == 1 else g.op("Concat", *pooled, axis=-1)

    outputs = []
    for task, params in heads.items():
        # heads.Head: standardize -> (Linear -> GELU)? -> Linear; then the calibrated bias
        z = g.op("Div", g.op("Sub", feats, g.const(params["mu"])), g.const(params["sigma"]))
        layers = sorted({int(k.split(".")[1]) for k in params if k.startswith("net.")})
        for j, idx in enumerate(layers):
            z = g.linear(z, params[f"net.{idx}.weight"], params[f"net.{idx}.bias"])
            if j < len(layers) - 1:
                z = g.gelu(z)
        z = g.op("Add", z, g.const(list(biases[task])))
        name = f"probs.{task}"
        g.nodes.append(helper.make_node("Softmax", [z], [name], axis=-1))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", len(biases[task])]))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]) for n in (ids, mask_in)]
    graph = helper.make_graph(g.nodes, "reputation_heads", inputs, outputs, initializer=g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="reputation_pipeline")


def _local_folder(ref: str) -> Path:
    """An encoder's files: its folder, or a hub id's snapshot in the local cache."""
    if Path(ref).is_dir():
        return Path(ref)
    from huggingface_hub import snapshot_download

    from reputation_pipeline.scoring.encoder import local_only

    return Path(snapshot_download(ref, local_files_only=local_only(ref)))


class OnnxHeads:
    """One ONNX Runtime session per bundle: encoder, pooling and every head in one pass."""

    def __init__(self, bundle: str | Path, meta: dict, encoder_dir: str | Path, *, threads: int = 0):
        import json

        import onnxruntime as ort
        from safetensors.numpy import load_file

        encoder_dir = _local_folder(str(encoder_dir))
        if not (encoder_dir / "model.safetensors").is_file():
            raise ValueError(f"encoder {encoder_dir} has no model.safetensors, which the CPU engine reads "
                             "(install the torch extra to serve other checkpoint formats)")
        config = json.loads((encoder_dir / "config.json").read_text())
        weights = load_file(str(encoder_dir / "model.safetensors"))
        # a checkpoint saved from a task model prefixes the encoder's names
        weights = {re.sub(r"^(bert|model)\.", "", k): v.astype(np.float32) for k, v in weights.items()
                   if v.dtype.kind == "f"}
        adapter = adapter_arrays(bundle, meta)
        if adapter is not None:
            weights = merge_lora(weights, adapter, float(meta["adapter"]["alpha"]), int(meta["adapter"]["rank"]))
        self.labels = {t: len(spec["labels"]) for t, spec in meta["tasks"].items()}
        biases = {t: spec.get("logit_bias") or [0.0] * len(spec["labels"]) for t, spec in meta["tasks"].items()}
        model = build_graph(config, weights, meta["features"], head_arrays(bundle, meta), biases)
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def predict(self, tokenizer, texts: Sequence[str], tasks: Sequence[str], *, max_length: int, max_batch: int,
                token_budget: int, bucketing: bool = True) -> dict[str, np.ndarray]:
        names = [f"probs.{t}" for t in tasks]
        out = {t: np.zeros((len(texts), self.labels[t]), dtype=np.float32) for t in tasks}
        for rows, input_ids, mask in padded_batches(tokenizer, texts, max_length=max_length, max_batch=max_batch,
                                                     token_budget=token_budget, bucketing=bucketing):
            res = self.session.run(names, {"input_ids": input_ids, "attention_mask": mask})
            for t, p in zip(tasks, res):
                out[t][rows] = p
        return out
