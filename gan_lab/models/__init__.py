"""Generator and discriminator builders, one module per architecture family."""

from gan_lab.models.dcgan import build_discriminator, build_generator

__all__ = ["build_discriminator", "build_generator"]
