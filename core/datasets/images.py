"""Image uploads: a zip whose top-level folders are class names holding PNG or JPEG files,
decoded to fixed-size pixel rows in [0, 1] ("pictures of cats and dogs in, class probabilities
out"). Every limit is checked from the zip directory and the image headers before anything is
decoded, and nothing is extracted to disk. ``decode_images`` is the same rule for predict."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin

from core.config import Settings
from core.datasets.columns import check_counts
from core.datasets.parsed import Deadline, ParsedDataset, excerpt
from core.datasets.values import MAX_CATEGORY_CHARS
from core.errors import InvalidInput, PayloadTooLarge, UnsupportedFormat, quote
from core.zip_directory import count_entries
from models.vocabulary import FeatureType, Task
from store.tables import DatasetFormat

IMAGE_SIZES = range(4, 129)
DEFAULT_IMAGE_SIZE = 32
COLOR_MODES = ("grayscale", "rgb")
DEFAULT_COLOR_MODE = "grayscale"
MAX_PREDICT_IMAGES = 1_000
LABEL = "class"
# Zip entries allowed per image: macOS adds a __MACOSX/._twin per file, plus folder entries.
_ENTRIES_PER_IMAGE = 3
_JUNK_FILES = {"thumbs.db", "desktop.ini"}
_PNG_MAGIC, _JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
# Pillow's decoders signal bad data with any of these (Image.open catches the same set).
_BAD_IMAGE = (OSError, SyntaxError, ValueError, LookupError, TypeError, struct.error, zlib.error)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError)


@dataclass(frozen=True)
class ImageShape:
    """What every image becomes: ``image_size`` x ``image_size`` pixels, grayscale or RGB."""

    image_size: int = DEFAULT_IMAGE_SIZE
    color_mode: str = DEFAULT_COLOR_MODE

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or size not in IMAGE_SIZES:
            raise InvalidInput(
                f"image_size must be an integer from {IMAGE_SIZES.start} to "
                f"{IMAGE_SIZES.stop - 1}; got {quote(size)}",
                {"field": "image_size", "value": excerpt(str(size))},
                code="invalid_image_size",
            )
        if self.color_mode not in COLOR_MODES:
            raise InvalidInput(
                f"color_mode must be one of {list(COLOR_MODES)}; got {quote(self.color_mode)}",
                {"field": "color_mode", "value": excerpt(str(self.color_mode))},
                code="invalid_color_mode",
            )

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    @property
    def n_pixels(self) -> int:
        return self.image_size * self.image_size * self.channels

    @property
    def pil_mode(self) -> str:
        return "L" if self.color_mode == "grayscale" else "RGB"

    def feature_names(self) -> list[str]:
        """Row-major, channel last: the order ``numpy.asarray(image).reshape(-1)`` gives."""
        cells = [f"px_{r}_{c}" for r in range(self.image_size) for c in range(self.image_size)]
        if self.channels == 1:
            return cells
        return [f"{cell}_{ch}" for cell in cells for ch in "rgb"]


def parse_images(
    path: Path, *, shape: ImageShape, settings: Settings, deadline: Deadline
) -> ParsedDataset:
    """A zip of class folders -> one row per image, labelled by its folder. Every check the
    directory and the headers allow comes before the first image is decoded."""
    if shape.n_pixels > settings.max_features:
        raise InvalidInput(
            f"image_size {shape.image_size} in {shape.color_mode} gives {shape.n_pixels} "
            f"features; at most {settings.max_features} are supported (setting max_features)",
            {"field": "image_size", "features": shape.n_pixels, "limit": settings.max_features},
            code="too_many_features",
        )
    pillow_limit(settings)
    with path.open("rb") as fp:
        limit = _ENTRIES_PER_IMAGE * settings.max_image_files
        entries = count_entries(fp, limit)
        if entries is None:
            raise not_a_zip()
        if entries > limit:
            raise _too_many_files(f"more than {limit} entries", settings.max_image_files)
        try:
            archive = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise not_a_zip() from exc
        with archive:
            members = _members(archive.infolist(), settings)
            n = len(members)
            check_counts(n, shape.n_pixels, settings)
            if n * shape.n_pixels * 8 > settings.max_decompressed_bytes:
                raise PayloadTooLarge(
                    f"{n} images of {shape.n_pixels} values take {n * shape.n_pixels * 8} "
                    f"bytes decoded; the limit is {settings.max_decompressed_bytes} (setting "
                    "max_decompressed_bytes): use a smaller image_size or grayscale",
                    {"images": n, "limit_bytes": settings.max_decompressed_bytes},
                    code="dataset_too_large",
                )
            deadline.check()
            x = np.empty((n, shape.n_pixels), dtype=np.float64)
            for i, (info, _) in enumerate(members):
                if i % 100 == 99:
                    deadline.check()
                where = {"member": excerpt(info.filename)}
                try:
                    data = archive.read(info)
                except _READ_ERRORS as exc:
                    problem = f"could not be read ({exc})"
                    raise _member_error(info.filename, problem, "unreadable_member") from exc
                x[i] = _decode(data, info.filename, where, shape, settings.max_image_pixels)
    x /= 255.0
    labels = [cls for _, cls in members]
    return ParsedDataset(
        format=DatasetFormat.images,
        feature_names=shape.feature_names(),
        feature_types=[FeatureType.numeric] * shape.n_pixels,
        X_numeric=x,
        X_categorical=np.empty((n, 0), dtype=np.int32),
        categories=[],
        y=np.array(labels, dtype=np.str_),
        label=LABEL,
        task=Task.classification,
        classes=sorted(set(labels)),
    )


def decode_images(
    files: list[tuple[str, bytes]], *, shape: ImageShape, settings: Settings
) -> NDArray[np.float64]:
    """Predict's input: one row per ``(filename, bytes)``, decoded exactly as for training."""
    if not files:
        raise InvalidInput("no image files were sent", {"field": "file"}, code="no_files")
    limit = min(MAX_PREDICT_IMAGES, settings.max_predict_rows)
    if len(files) > limit:
        raise PayloadTooLarge(
            f"{len(files)} images were sent; at most {limit} are accepted per request",
            {"field": "file", "files": len(files), "limit": limit},
            code="too_many_files",
        )
    pillow_limit(settings)
    out = np.empty((len(files), shape.n_pixels), dtype=np.float64)
    for i, (name, data) in enumerate(files):
        where = {"field": "file", "filename": excerpt(name)}
        out[i] = _decode(data, name, where, shape, settings.max_image_pixels)
    out /= 255.0
    return out


def pillow_limit(settings: Settings) -> None:
    """Pillow's process-wide pixel limit, the same as ours: it warns past it and refuses past
    twice it (DecompressionBombError), wherever an image is opened in this process."""
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels


# ---------------------------------------------------------------------------------------------
# The archive


def not_a_zip() -> UnsupportedFormat:
    return UnsupportedFormat(
        "the upload is not a zip archive (or is truncated); send a zip of class folders of "
        "PNG or JPEG images",
        {"expected": "zip"},
        code="not_a_zip",
    )


def _member_error(name: str, problem: str, code: str) -> InvalidInput:
    return InvalidInput(
        f"archive member {quote(name)} {problem}", {"member": excerpt(name)}, code=code
    )


def _too_many_files(found: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the archive holds {found}; at most {limit} images are accepted (setting max_image_files)",
        {"limit_files": limit},
        code="too_many_files",
    )


def _members(infos: list[zipfile.ZipInfo], settings: Settings) -> list[tuple[zipfile.ZipInfo, str]]:
    """The image files and their classes, sorted by name, after every check of the directory."""
    files: list[tuple[zipfile.ZipInfo, list[str]]] = []
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if name.startswith("/") or "\\" in name or name[1:2] == ":" or ".." in parts:
            problem = "has an unsafe path (absolute, drive letter, backslash or '..')"
            raise _member_error(name, problem, "unsafe_member_name")
        parts = [p for p in parts if p not in ("", ".")]
        junk = any(p == "__MACOSX" or p.startswith(".") for p in parts)
        if info.is_dir() or not parts or junk or parts[-1].lower() in _JUNK_FILES:
            continue
        if info.flag_bits & 0x1:
            raise _member_error(name, "is encrypted (password-protected)", "encrypted_member")
        files.append((info, parts))
    # A single top folder holding only folders is a wrapper (what zipping one folder gives):
    # its subfolders are the classes. Deeper folders inside a class folder belong to it.
    if len({p[0] for _, p in files}) == 1 and all(len(p) >= 3 for _, p in files):
        files = [(info, p[1:]) for info, p in files]
    loose = [info.filename for info, p in files if len(p) == 1]
    if not files or len(loose) == len(files):
        found = "no files" if not files else f"only files at its top level ({quote(loose[0])})"
        raise InvalidInput(
            f"the archive holds {found}; put each class's images in a folder named after the "
            "class (cat/001.jpg, dog/002.png)",
            {"files": len(files)},
            code="no_class_folders",
        )
    if loose:
        problem = "is outside any class folder; every image must be in its class's folder"
        raise _member_error(loose[0], problem, "file_outside_class_folder")
    classes = sorted({p[0] for _, p in files})
    for cls in (c for c in classes if not c.strip() or len(c) > MAX_CATEGORY_CHARS):
        raise InvalidInput(
            f"class folder {quote(cls)} needs a name of 1 to {MAX_CATEGORY_CHARS} characters",
            {"class": excerpt(cls), "limit": MAX_CATEGORY_CHARS},
            code="class_name_too_long" if cls.strip() else "empty_class_name",
        )
    if len(classes) < 2:
        raise InvalidInput(
            f"the archive has one class folder ({quote(classes[0])}); classification needs "
            "at least 2 (one folder per class at the top level of the archive)",
            {"classes": classes},
            code="single_class",
        )
    if len(classes) > settings.max_categories:
        raise InvalidInput(
            f"the archive has {len(classes)} class folders; at most {settings.max_categories} "
            "are supported (setting max_categories)",
            {"classes": len(classes), "limit": settings.max_categories},
            code="too_many_classes",
        )
    if len(files) > settings.max_image_files:
        raise _too_many_files(f"{len(files)} images", settings.max_image_files)
    declared = sum(info.file_size for info, _ in files)
    if declared > settings.max_decompressed_bytes:
        raise PayloadTooLarge(
            f"the archive's images declare {declared} bytes uncompressed; the limit is "
            f"{settings.max_decompressed_bytes} (setting max_decompressed_bytes)",
            {"declared_bytes": declared, "limit_bytes": settings.max_decompressed_bytes},
            code="dataset_too_large",
        )
    return sorted(((info, p[0]) for info, p in files), key=lambda m: m[0].filename)


# ---------------------------------------------------------------------------------------------
# One image


def _decode(
    data: bytes, name: str, where: dict[str, Any], shape: ImageShape, max_pixels: int
) -> NDArray[np.uint8]:
    """One image's pixels (uint8, the feature order). Pillow's plugin class is chosen from the
    file's magic bytes and reads only the header, so the pixel limit (ours, from Settings)
    refuses a decompression bomb before it is decoded. Pillow's own guard, set to the same limit
    (``pillow_limit``), is the second line should ours ever be passed."""
    if data.startswith(_PNG_MAGIC):
        opener: type[ImageFile.ImageFile] = PngImagePlugin.PngImageFile
    elif data.startswith(_JPEG_MAGIC):
        opener = JpegImagePlugin.JpegImageFile
    else:
        raise InvalidInput(f"{quote(name)} is not a PNG or JPEG image", where, code="not_an_image")
    try:
        with opener(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise _bomb(name, where, f"{width}x{height}", max_pixels)
            Image._decompression_bomb_check(img.size)  # Pillow's guard (Image.open calls it)
            # JPEG: decode straight to the mode and at 1/2..1/8 scale (DCT scaling), no smaller
            # than the target; a no-op for PNG.
            img.draft(shape.pil_mode, (shape.image_size, shape.image_size))
            img.load()
            return _pixels(img, shape)
    except Image.DecompressionBombError as exc:  # Pillow's own guard, should a plugin raise it
        raise _bomb(name, where, "too many pixels", max_pixels) from exc
    except _BAD_IMAGE as exc:
        raise InvalidInput(
            f"{quote(name)} is a corrupt or truncated image ({excerpt(str(exc), 100)})",
            where,
            code="corrupt_image",
        ) from exc


def _bomb(name: str, where: dict[str, Any], declared: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{quote(name)} declares {declared} pixels; at most {limit} pixels per image are "
        "accepted (setting max_image_pixels)",
        {**where, "declared": declared, "limit_pixels": limit},
        code="image_too_large",
    )


def _pixels(img: Image.Image, shape: ImageShape) -> NDArray[np.uint8]:
    ImageOps.exif_transpose(img, in_place=True)  # camera photos are stored sideways
    if img.mode.startswith("I"):  # 16-bit grayscale: Pillow's convert clips at 255; scale
        img = Image.fromarray((np.asarray(img).clip(0, 65535) >> 8).astype(np.uint8))
    if img.mode in ("LA", "PA", "RGBA") or "transparency" in img.info:
        # Transparent pixels hide arbitrary colours: composite on white, as a viewer shows them.
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    # Squashed to a square, aspect not kept (as Keras' image_dataset_from_directory does):
    # nothing is cropped away. BILINEAR: Pillow's filters antialias when shrinking, and unlike
    # LANCZOS it never rings when enlarging small images (8x8 digits); reducing_gap box-reduces
    # big photos by an integer factor first (fast, visually identical).
    img = img.convert(shape.pil_mode).resize(
        (shape.image_size, shape.image_size), Image.Resampling.BILINEAR, reducing_gap=3.0
    )
    return np.asarray(img, dtype=np.uint8).reshape(-1)
