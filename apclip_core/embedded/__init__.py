"""The embedded world: the rendered video benchmark and the tiny CLIP pretrained on it, apart from real data."""
