"""blurblib: reproduce, explore and teach Tinn et al. (2023) on the BLURB benchmark."""

__version__ = "0.1.0"
