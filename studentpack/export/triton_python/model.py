"""Triton Python-backend model written by `studentpack export --triton`: text in, embedding (or logits)
out, as `studentpack serve` answers over Open Inference Protocol v2.

This file runs inside Triton's Python backend stub, not in studentpack: it needs only numpy (< 2 with
the stubs of nvidia-pytriton 0.7), onnxruntime and tokenizers, from the environment named by the
model's EXECUTION_ENV_PATH parameter (or the stub's own Python). Next to it in the version directory:
model.onnx (the exported variant), tokenizer.json and export.json.

Tokenisation matches `studentpack serve`: the variant's fast tokenizer, special tokens added, cut at
`max_length` tokens, each batch padded to its own longest row. Triton's dynamic batcher hands several
requests to one `execute` call; their texts run as one padded batch and the rows go back per request,
except for a batch-dependent variant (parameter one_text_per_call), whose texts run one per call.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def _decode(values):
    """(problem, texts): UTF-8 texts, or why they cannot be embedded (as studentpack serve refuses them)."""
    try:
        texts = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    except UnicodeDecodeError as exc:
        return f"input 'text' is not UTF-8: {exc}", []
    empty = [i for i, text in enumerate(texts) if not text]
    if empty:
        return f"input 'text'[{empty[0]}] is an empty string", []
    return "", texts


class TritonPythonModel:
    def initialize(self, args):
        here = os.path.join(args["model_repository"], args["model_version"])
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
        with open(os.path.join(here, "export.json"), encoding="utf-8") as handle:
            info = json.load(handle)
        self.max_length = int(params.get("max_length") or info.get("max_length") or 128)
        self.tokenizer = Tokenizer.from_file(os.path.join(here, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.pad_id = int(params.get("pad_token_id") or 0)
        # a batch-dependent variant (one INT8 scale per batch) runs one text per call, as studentpack serve does
        self.one_text_per_call = params.get("one_text_per_call") == "1"
        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads") or 0)
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            os.path.join(here, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name: _INT_TYPES.get(i.type, np.int64) for i in self.session.get_inputs()}
        classifier = info.get("kind") == "classifier"
        self.graph_output = "logits" if classifier else "sentence_embedding"
        self.output = "logits" if classifier else "embedding"

    def execute(self, requests):
        texts, counts, responses = [], [], [None] * len(requests)
        for k, request in enumerate(requests):
            values = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)  # (n,) bytes
            problem, decoded = _decode(values)
            if problem:  # this request fails alone; the others in the batch still run
                responses[k] = pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
                counts.append(0)
                continue
            texts.extend(decoded)
            counts.append(len(decoded))
        if not texts:
            rows = np.zeros((0, 1), dtype=np.float32)
        elif self.one_text_per_call:
            rows = np.concatenate([self._run([text]) for text in texts])
        else:
            rows = self._run(texts)
        start = 0
        for k, count in enumerate(counts):
            if responses[k] is not None:
                continue
            out = pb_utils.Tensor(self.output, np.ascontiguousarray(rows[start : start + count], dtype=np.float32))
            responses[k] = pb_utils.InferenceResponse(output_tensors=[out])
            start += count
        return responses

    def _run(self, texts):
        encodings = self.tokenizer.encode_batch(texts)
        longest = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), longest), self.pad_id, dtype=np.int64)  # (B, T)
        mask = np.zeros((len(texts), longest), dtype=np.int64)  # (B, T)
        for i, encoding in enumerate(encodings):
            ids[i, : len(encoding.ids)] = encoding.ids
            mask[i, : len(encoding.ids)] = 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {name: arrays[name].astype(dtype) for name, dtype in self.inputs.items()}
        return self.session.run([self.graph_output], feeds)[0]  # (B, H) or (B, C)

    def finalize(self):
        self.session = None
