"""gan_lab: train and evaluate DCGAN-style GANs with Lightning, Hydra and torchmetrics."""

__version__ = "0.1.0"
