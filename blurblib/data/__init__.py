"""BLURB's datasets: the task registry and loaders, tokenisation for a model, the official metrics, MLM corpora."""
