"""PaddleDetection (`ppdet` 2.6.0) as the runner's model zoo: its configs, its architectures, its
losses, its reader transforms and its export signature. Submodules:

- `lib`: importing ppdet quietly, and one ppdet config active at a time in its global workspace
- `config`: reading a PaddleDetection config tree (`_BASE_` includes) and fitting it to a job
- `build`: building a model from a config, loading PaddleDetection-named weights
- `reader`: the config's own train transforms over a COCO split, in a seeded, resumable order
- `export`: PaddleDetection's inference signature and infer_cfg.yml
"""
