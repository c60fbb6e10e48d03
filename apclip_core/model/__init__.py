"""The video CLIP: an open_clip model applied to frames (`video_clip`), the temporal module
(`temporal`), and the similarities between a video's frames and a class's prompts (`similarity`,
with MAKA in `maka`)."""
from apclip_core.model.video_clip import (VideoCLIP, create_model, create_model_and_transforms, load_checkpoint,
                                          save_checkpoint, weights_fingerprint)

__all__ = ["VideoCLIP", "create_model", "create_model_and_transforms", "load_checkpoint", "save_checkpoint",
           "weights_fingerprint"]
