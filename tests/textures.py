"""The texture image of the unsupervised tests (tests only).

The CC0 brick photo of ../shared/data when it is there (CI has it); otherwise a synthetic
64x64 RGB brick-like pattern written once to a temporary folder, so the tests run, never skip.
"""

import tempfile
from pathlib import Path

import torch
from PIL import Image

SHARED_BRICK = Path(__file__).resolve().parents[2] / "shared" / "data" / "textures" / "brick.png"


def texture_image() -> Path:
    """Path of a texture image at least 64x64 pixels."""
    if SHARED_BRICK.is_file():
        return SHARED_BRICK
    path = Path(tempfile.gettempdir()) / "robust_winn-test-texture.png"
    if not path.is_file():
        rows = torch.arange(64).view(64, 1).expand(64, 64)
        cols = torch.arange(64).view(1, 64).expand(64, 64)
        mortar = (rows % 16 < 2) | ((cols + 8 * (rows // 16 % 2)) % 16 < 2)  # mortar lines
        rgb = torch.stack([torch.full((64, 64), 170), torch.full((64, 64), 80), torch.full((64, 64), 60)], -1)
        rgb[mortar] = 200
        Image.fromarray(rgb.byte().numpy()).save(path)
    return path
