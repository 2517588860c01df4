"""Training of the built-in detectors: optimizer and schedule, EMA, checkpoints, the loop."""
