"""Data sources, the first stage of the flow (REFERENCE §1.1, §3.1).

``datasets``: labelled datasets (MNIST, Fashion-MNIST, SVHN, CIFAR-10, the bundled sample) as
uint8 tensors with train/validation/test splits. ``positives``: positives for unsupervised WINN
(texture crops, image folders, CelebA, dataset images).
"""

from .datasets import DataSplits, ImageSet, list_datasets, load_dataset, to_model_range, to_unit_range

__all__ = ["DataSplits", "ImageSet", "list_datasets", "load_dataset", "to_model_range", "to_unit_range"]
