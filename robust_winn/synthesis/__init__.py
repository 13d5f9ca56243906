"""Pseudo-negative synthesis: the image-space sampler and the negative pool."""

from .pool import NegativePool
from .sampler import PseudoNegativeSampler, SynthesisStats

__all__ = ["NegativePool", "PseudoNegativeSampler", "SynthesisStats"]
