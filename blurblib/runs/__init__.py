"""Many runs: the results store, grids run resumably in worker processes or on Ray, what a grid costs,
recipe calibration on dev, the frozen-encoder references and the pretraining arms."""
