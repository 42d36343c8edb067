"""The distillation engine: configuration, data, the training loop, checkpoints and the run manifest."""
