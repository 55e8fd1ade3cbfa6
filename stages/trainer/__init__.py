"""The downstream trainer stage: a dataset over motionpipe runs, conditioning modules, a small video diffusion model."""
