"""The pretrained encoders: the model registry and loading with a task head, weight packs and the hub cache,
shape-true twins of the paper's models, and their vocabularies."""
