"""robust_winn: Wasserstein Introspective Neural Networks (Lee et al., CVPR 2018).

One CNN that is both a classifier and a generator, trained against pseudo-negatives it
synthesizes itself, and a harness that measures its adversarial robustness.
"""

__version__ = "0.1.0"
