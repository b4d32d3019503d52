"""One run: its schema (`RunConfig`) and record, the optimiser, the stabilisation techniques, SlimFit, the
fine-tuning loop, and continued masked-LM pretraining."""
