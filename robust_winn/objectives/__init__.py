"""Training objectives: the loss terms of the baseline and of WINN (paper §3-4, §5.6)."""
