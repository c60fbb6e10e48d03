"""Data: annotation lists, the protocols, video decoding, frame sampling, transforms, the datasets and loaders, dataset preparation."""
