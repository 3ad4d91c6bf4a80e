"""scikit-learn's digits (real scanned digits) written as PNG files, one folder per class."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def png(pixels: NDArray[Any]) -> bytes:
    """An 8x8 digit (0..16) as an 8-bit grayscale PNG."""
    buffer = io.BytesIO()
    Image.fromarray((pixels * 255.0 / 16.0).round().astype(np.uint8), mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def digits_as_pngs() -> tuple[bytes, list[tuple[str, bytes, int]]]:
    """A zip of the training digits (``3/0042.png``), and the held-out ones as (name, png,
    label)."""
    digits = load_digits()
    train_idx, test_idx = train_test_split(
        np.arange(len(digits.target)), test_size=0.2, random_state=0, stratify=digits.target
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for i in train_idx:
            zf.writestr(f"{digits.target[i]}/{i:04d}.png", png(digits.images[i]))
    held_out = [(f"{i:04d}.png", png(digits.images[i]), int(digits.target[i])) for i in test_idx]
    return archive.getvalue(), held_out
