"""ONNX export: fp32 (onnx.py), fusion (optimize.py), INT8 and fp16 (quantize.py), gates (validate.py),
Triton model repositories (triton.py), all driven by `pipeline.export_variants`.

Modules here import torch/onnx/onnxruntime at their top; import them only where that cost is wanted
(the CLI imports them inside `run`).
"""
