"""The text side: the distillation corpus, its sentence segments, and where models and texts come from."""
