"""Training and evaluation: the run config, distributed state, the training loop, evaluation and metrics, cost estimates."""
