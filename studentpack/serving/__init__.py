"""HTTP serving for exported students (Open Inference Protocol v2, OpenAI-style embeddings)."""
