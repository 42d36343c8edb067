"""One module per CLI verb. Keep module-level imports light: no torch, transformers or onnxruntime."""
