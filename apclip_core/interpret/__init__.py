"""Interpretability: attention maps, per-frame prompt explanations, Figure 5."""
