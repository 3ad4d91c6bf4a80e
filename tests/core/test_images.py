"""Image archives: class folders of PNG/JPEG files to pixel rows, every hostile or malformed
archive refused with its own code naming the member, and bombs refused before decoding."""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile
from sklearn.datasets import load_digits

from core.config import Settings
from core.datasets import images
from core.datasets.images import ImageShape, decode_images, parse_images
from core.datasets.parsed import Deadline, ParsedDataset
from core.errors import DescentError, InvalidInput, PayloadTooLarge, UnsupportedFormat
from models.vocabulary import Task
from store.tables import DatasetFormat

GRAY = ImageShape(8, "grayscale")


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(database_url="sqlite://", data_dir=tmp_path)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def jpeg(img: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **kwargs)
    return buf.getvalue()


def shape_image(kind: str, size: int = 32) -> Image.Image:
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    box = (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
    (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=255)
    return img


def write_zip(path: Path, members: Iterable[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def two_classes(path: Path, extra: Iterable[tuple[str, bytes]] = ()) -> Path:
    base = [
        ("circle/001.png", png(shape_image("circle"))),
        ("square/001.png", png(shape_image("square"))),
    ]
    return write_zip(path, [*base, *extra])


def parse(path: Path, settings: Settings, shape: ImageShape = GRAY) -> ParsedDataset:
    return parse_images(path, shape=shape, settings=settings, deadline=Deadline(60))


def refused(path: Path, settings: Settings, kind: type[DescentError], code: str) -> DescentError:
    with pytest.raises(kind) as info:
        parse(path, settings)
    assert info.value.code == code, info.value.message
    return info.value


# ---------------------------------------------------------------------------------------------
# Happy paths


def test_shapes_parse_to_classes_and_pixels(tmp_path: Path, cfg: Settings) -> None:
    members = [
        (f"{kind}/{i:03d}.png", png(shape_image(kind, 24 + 4 * i)))
        for kind in ("circle", "square")
        for i in range(5)
    ]
    ds = parse(write_zip(tmp_path / "a.zip", members), cfg)
    assert ds.format is DatasetFormat.images
    assert ds.task is Task.classification
    assert ds.label == "class"
    assert ds.classes == ["circle", "square"]
    assert ds.y.dtype.kind == "U"
    assert ds.y.tolist() == ["circle"] * 5 + ["square"] * 5
    assert ds.X_numeric.shape == (10, 64)
    assert ds.X_numeric.dtype == np.float64
    assert ds.X_categorical.shape == (10, 0)
    assert ds.categories == []
    assert ds.feature_names[:3] == ["px_0_0", "px_0_1", "px_0_2"]
    assert ds.feature_names[-1] == "px_7_7"
    assert set(ds.feature_types) == {"numeric"}
    assert ds.X_numeric.min() == 0.0
    assert ds.X_numeric.max() == 1.0
    assert ds.class_counts() == [5, 5]
    # A filled square covers its corner cells more than a circle does.
    corner = ds.feature_names.index("px_2_2")
    assert ds.X_numeric[5:, corner].mean() > ds.X_numeric[:5, corner].mean() + 0.2


def test_pixel_order_is_row_major_channel_last(tmp_path: Path, cfg: Settings) -> None:
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    rgb = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    members = [("a/g.png", png(Image.fromarray(gray))), ("b/c.png", png(Image.fromarray(rgb)))]
    path = write_zip(tmp_path / "a.zip", members)

    ds = parse(path, cfg, ImageShape(4, "grayscale"))
    assert np.array_equal(ds.X_numeric[0], gray.reshape(-1) / 255.0)

    ds = parse(path, cfg, ImageShape(4, "rgb"))
    assert ds.feature_names[:4] == ["px_0_0_r", "px_0_0_g", "px_0_0_b", "px_0_1_r"]
    assert len(ds.feature_names) == 48
    assert np.array_equal(ds.X_numeric[1], rgb.reshape(-1) / 255.0)
    # Grayscale in rgb mode: three equal channels.
    assert np.array_equal(ds.X_numeric[0].reshape(16, 3).T, np.tile(gray.reshape(-1), (3, 1)) / 255)


def test_digits_upscale_and_rgb_colour(tmp_path: Path, cfg: Settings) -> None:
    digits = load_digits()
    members = []
    for i in range(40):
        pixels = (digits.images[i] * (255 / 16)).round().astype(np.uint8)
        members.append((f"{digits.target[i]}/{i}.png", png(Image.fromarray(pixels))))
    ds = parse(write_zip(tmp_path / "d.zip", members), cfg, ImageShape(16, "grayscale"))
    assert ds.classes == [str(d) for d in range(10)]
    assert ds.X_numeric.shape == (40, 256)
    assert ds.X_numeric.min() >= 0.0 and ds.X_numeric.max() <= 1.0

    red = Image.new("RGB", (10, 10), (255, 0, 0))
    blue = Image.new("RGB", (10, 10), (0, 0, 255))
    path = write_zip(tmp_path / "c.zip", [("red/1.jpg", jpeg(red)), ("blue/1.png", png(blue))])
    ds = parse(path, cfg, ImageShape(4, "rgb"))
    by_class = dict(zip(ds.y.tolist(), ds.X_numeric.reshape(2, 16, 3).mean(axis=1), strict=True))
    assert by_class["red"][0] > 0.9 and by_class["red"][2] < 0.1
    assert by_class["blue"][2] > 0.9 and by_class["blue"][0] < 0.1


def test_nested_folders_wrapper_and_junk(tmp_path: Path, cfg: Settings) -> None:
    members = [
        ("pets/cat/001.png", png(shape_image("circle"))),
        ("pets/dog/x/y/002.png", png(shape_image("square"))),
        ("pets/dog/", b""),
        ("__MACOSX/pets/cat/._001.png", b"junk"),
        ("pets/.DS_Store", b"junk"),
        ("pets/cat/.hidden.png", b"junk"),
        ("pets/dog/Thumbs.db", b"junk"),
        ("pets/dog/.git/config", b"junk"),
    ]
    ds = parse(write_zip(tmp_path / "a.zip", members), cfg)
    assert ds.classes == ["cat", "dog"]
    assert ds.n_rows == 2

    # Without the wrapper, the class is the top folder whatever the depth below it.
    members = [(n.removeprefix("pets/"), d) for n, d in members if n.startswith("pets/")]
    ds = parse(write_zip(tmp_path / "b.zip", members), cfg)
    assert ds.classes == ["cat", "dog"]


def test_alpha_is_composited_on_white(tmp_path: Path, cfg: Settings) -> None:
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    solid = Image.new("RGBA", (4, 4), (0, 0, 0, 255))
    path = write_zip(tmp_path / "a.zip", [("a/1.png", png(clear)), ("b/1.png", png(solid))])
    ds = parse(path, cfg, ImageShape(4))
    assert ds.X_numeric[0].tolist() == [1.0] * 16
    assert ds.X_numeric[1].tolist() == [0.0] * 16


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path, cfg: Settings) -> None:
    deep = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert deep.mode == "I;16"
    path = write_zip(tmp_path / "a.zip", [("a/1.png", png(deep)), ("b/1.png", png(deep))])
    ds = parse(path, cfg, ImageShape(4))
    assert ds.X_numeric[0].tolist() == [128 / 255] * 16


def test_jpeg_exif_orientation_is_applied(tmp_path: Path, cfg: Settings) -> None:
    # Stored 64 wide x 32 high, top half white; orientation 6 says "rotate 90 clockwise to
    # view", so the viewed image is 32 x 64 with its right half white.
    stored = Image.new("L", (64, 32), 0)
    stored.paste(255, (0, 0, 64, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    members = [("a/1.jpg", jpeg(stored, exif=exif)), ("b/1.jpg", jpeg(stored))]
    ds = parse(write_zip(tmp_path / "a.zip", members), cfg)
    rotated = ds.X_numeric[0].reshape(8, 8)
    assert rotated[:, :3].max() < 0.1 and rotated[:, 5:].min() > 0.9
    plain = ds.X_numeric[1].reshape(8, 8)
    assert plain[:3].min() > 0.9 and plain[5:].max() < 0.1


def test_decode_images_equals_parse_rows(tmp_path: Path, cfg: Settings) -> None:
    photo = Image.radial_gradient("L").resize((300, 200)).convert("RGB")
    files = [
        ("circle/1.png", png(shape_image("circle", 50))),
        ("square/2.jpg", jpeg(photo)),
        ("square/3.png", png(Image.new("P", (7, 9), 3))),
    ]
    for shape in (ImageShape(), ImageShape(12, "rgb")):
        ds = parse(write_zip(tmp_path / "a.zip", files), cfg, shape)
        rows = decode_images(files, shape=shape, settings=cfg)
        assert rows.dtype == np.float64
        assert np.array_equal(rows, ds.X_numeric)


# ---------------------------------------------------------------------------------------------
# Parameters


@pytest.mark.parametrize(
    ("size", "mode", "field"),
    [
        (3, "grayscale", "image_size"),
        (129, "rgb", "image_size"),
        (True, "rgb", "image_size"),
        ("32", "rgb", "image_size"),
        (32, "RGB", "color_mode"),
        (32, "cmyk", "color_mode"),
    ],
)
def test_bad_shape_parameters(size: object, mode: str, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        ImageShape(size, mode)  # type: ignore[arg-type]
    assert info.value.details["field"] == field
    assert info.value.code == f"invalid_{field}"


def test_shape_features() -> None:
    assert ImageShape().n_pixels == 32 * 32
    assert ImageShape(5, "rgb").channels == 3
    assert ImageShape(5, "rgb").feature_names()[-1] == "px_4_4_b"
    assert len(ImageShape(5, "rgb").feature_names()) == ImageShape(5, "rgb").n_pixels == 75


def test_too_many_features(tmp_path: Path, cfg: Settings) -> None:
    path = two_classes(tmp_path / "a.zip")
    with pytest.raises(InvalidInput) as info:
        parse(path, cfg, ImageShape(128, "rgb"))
    assert info.value.code == "too_many_features"
    assert info.value.details["field"] == "image_size"


# ---------------------------------------------------------------------------------------------
# Refusals


def test_not_a_zip(tmp_path: Path, cfg: Settings) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"pixel,label\n1,cat\n")
    refused(path, cfg, UnsupportedFormat, "not_a_zip")
    good = two_classes(tmp_path / "b.zip").read_bytes()
    path.write_bytes(good[: len(good) // 2])
    refused(path, cfg, UnsupportedFormat, "not_a_zip")


def test_encrypted_member(tmp_path: Path, cfg: Settings) -> None:
    path = two_classes(tmp_path / "a.zip", [("square/secret.png", b"x")])
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo("square/secret.png").header_offset
    raw = bytearray(path.read_bytes())
    # Set the "encrypted" flag an encrypting archiver writes, in the local header and the
    # member's (last) central directory entry; zipfile cannot write encrypted members itself.
    raw[offset + 6] |= 0x1
    raw[raw.rfind(b"PK\x01\x02") + 8] |= 0x1
    path.write_bytes(bytes(raw))
    err = refused(path, cfg, InvalidInput, "encrypted_member")
    assert err.details["member"] == "square/secret.png"


@pytest.mark.parametrize(
    "name", ["../evil.png", "cat/../../evil.png", "/etc/cat.png", "C:/cat/1.png", "cat\\1.png"]
)
def test_unsafe_member_names(tmp_path: Path, cfg: Settings, name: str) -> None:
    path = two_classes(tmp_path / "a.zip", [(name, png(shape_image("circle")))])
    err = refused(path, cfg, InvalidInput, "unsafe_member_name")
    assert err.details["member"] == name
    assert repr(name) in err.message


def test_no_class_folders(tmp_path: Path, cfg: Settings) -> None:
    flat = [("1.png", png(shape_image("circle"))), ("2.png", png(shape_image("square")))]
    err = refused(write_zip(tmp_path / "a.zip", flat), cfg, InvalidInput, "no_class_folders")
    assert "top level" in err.message
    junk_only = [("__MACOSX/._a", b"x"), (".DS_Store", b"x"), ("cat/", b"")]
    refused(write_zip(tmp_path / "b.zip", junk_only), cfg, InvalidInput, "no_class_folders")
    refused(write_zip(tmp_path / "c.zip", []), cfg, InvalidInput, "no_class_folders")


def test_file_outside_class_folder(tmp_path: Path, cfg: Settings) -> None:
    path = two_classes(tmp_path / "a.zip", [("README.md", b"hello")])
    err = refused(path, cfg, InvalidInput, "file_outside_class_folder")
    assert err.details["member"] == "README.md"


def test_single_class(tmp_path: Path, cfg: Settings) -> None:
    members = [("cat/1.png", png(shape_image("circle"))), ("cat/2.png", png(shape_image("x")))]
    err = refused(write_zip(tmp_path / "a.zip", members), cfg, InvalidInput, "single_class")
    assert err.details["classes"] == ["cat"]


def test_class_names(tmp_path: Path, cfg: Settings) -> None:
    long = "c" * 300
    path = two_classes(tmp_path / "a.zip", [(f"{long}/1.png", png(shape_image("circle")))])
    err = refused(path, cfg, InvalidInput, "class_name_too_long")
    assert err.details["class"].startswith("ccc")
    path = two_classes(tmp_path / "b.zip", [("  /1.png", png(shape_image("circle")))])
    refused(path, cfg, InvalidInput, "empty_class_name")


def test_too_many_classes(tmp_path: Path) -> None:
    cfg = Settings(database_url="sqlite://", data_dir=tmp_path, max_categories=3)
    members = [(f"k{i}/1.png", png(shape_image("circle", 8))) for i in range(4)]
    err = refused(write_zip(tmp_path / "a.zip", members), cfg, InvalidInput, "too_many_classes")
    assert err.details == {"classes": 4, "limit": 3}


def test_not_an_image_is_named(tmp_path: Path, cfg: Settings) -> None:
    path = two_classes(tmp_path / "a.zip", [("square/notes.txt", b"not a picture")])
    err = refused(path, cfg, InvalidInput, "not_an_image")
    assert err.message == "'square/notes.txt' is not a PNG or JPEG image"
    assert err.details == {"member": "square/notes.txt"}
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, "GIF")
    path = two_classes(tmp_path / "b.zip", [("square/anim.gif", gif.getvalue())])
    refused(path, cfg, InvalidInput, "not_an_image")


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_truncated_image_is_named(tmp_path: Path, cfg: Settings, fmt: str) -> None:
    data = (png if fmt == "png" else jpeg)(Image.effect_noise((64, 64), 50))
    path = two_classes(tmp_path / "a.zip", [("circle/broken.img", data[: len(data) // 2])])
    err = refused(path, cfg, InvalidInput, "corrupt_image")
    assert err.details == {"member": "circle/broken.img"}
    assert "'circle/broken.img'" in err.message


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, followed by a few bytes of image data: any
    attempt to decode it fails as truncated, so only a header-time refusal says 'too large'."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)


def test_image_bomb_refused_unread(
    tmp_path: Path, cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    load = ImageFile.ImageFile.load

    def guarded(self: ImageFile.ImageFile) -> None:
        assert self.size[0] < 30000, "the bomb was decoded"
        load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", guarded)
    bomb = png_header_only(30000, 30000)
    assert len(bomb) < 200
    path = two_classes(tmp_path / "a.zip", [("circle/bomb.png", bomb)])
    start = time.perf_counter()
    with pytest.raises(PayloadTooLarge) as info:
        parse(path, cfg)
    assert time.perf_counter() - start < 1.0
    err = info.value
    assert err.code == "image_too_large"
    assert err.details["member"] == "circle/bomb.png"
    assert err.details["declared"] == "30000x30000"
    assert "'circle/bomb.png' declares 30000x30000 pixels" in err.message


def test_pixel_limit_applies_to_jpeg(tmp_path: Path) -> None:
    cfg = Settings(database_url="sqlite://", data_dir=tmp_path, max_image_pixels=32 * 32)
    big = ("square/big.jpg", jpeg(Image.new("L", (40, 30))))
    err = refused(two_classes(tmp_path / "a.zip", [big]), cfg, PayloadTooLarge, "image_too_large")
    assert err.details["declared"] == "40x30"
    assert err.details["limit_pixels"] == 1024


def test_pillows_own_limit_is_ours_and_a_second_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after
    cfg = Settings(database_url="sqlite://", data_dir=tmp_path, max_image_pixels=64 * 64)
    assert parse(two_classes(tmp_path / "a.zip"), cfg).n_rows == 2
    assert Image.MAX_IMAGE_PIXELS == 64 * 64
    decode_images([("a.png", png(shape_image("circle")))], shape=GRAY, settings=Settings(
        database_url="sqlite://", data_dir=tmp_path, max_image_pixels=50 * 50
    ))  # fmt: skip
    assert Image.MAX_IMAGE_PIXELS == 50 * 50
    # Were our header check ever passed, Pillow's guard (here lower than ours) still refuses.
    monkeypatch.setattr(images, "pillow_limit", lambda _: setattr(Image, "MAX_IMAGE_PIXELS", 100))
    err = refused(two_classes(tmp_path / "b.zip"), cfg, PayloadTooLarge, "image_too_large")
    assert err.details["declared"] == "too many pixels"


def test_too_many_files(tmp_path: Path) -> None:
    cfg = Settings(database_url="sqlite://", data_dir=tmp_path, max_image_files=3)
    extra = [(f"circle/{i}.png", b"never decoded") for i in range(2)]
    err = refused(two_classes(tmp_path / "a.zip", extra), cfg, PayloadTooLarge, "too_many_files")
    assert err.details == {"limit_files": 3}
    assert "4 images" in err.message
    # Entries of any kind beyond 3 per allowed image are refused before zipfile reads them.
    extra = [(f"circle/{i}/", b"") for i in range(20)]
    err = refused(two_classes(tmp_path / "b.zip", extra), cfg, PayloadTooLarge, "too_many_files")
    assert "more than 9 entries" in err.message


def test_entries_counted_in_zip64_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Settings(database_url="sqlite://", data_dir=tmp_path, max_image_files=3)
    # zipfile writes the zip64 end records past this many entries (65,535): lower it to get
    # a small zip64 archive.
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    small = two_classes(tmp_path / "a.zip")
    big = two_classes(tmp_path / "b.zip", [(f"circle/{i}/", b"") for i in range(20)])
    monkeypatch.undo()
    assert b"PK\x06\x06" in small.read_bytes()
    assert parse(small, cfg).n_rows == 2
    err = refused(big, cfg, PayloadTooLarge, "too_many_files")
    assert "more than 9 entries" in err.message


def test_declared_size_limit(tmp_path: Path) -> None:
    cfg = Settings(database_url="sqlite://", data_dir=tmp_path, max_decompressed_bytes=10_000)
    extra = [("circle/zeros.png", b"\0" * 20_000)]  # compresses to a few bytes; never decoded
    path = write_zip(tmp_path / "a.zip", [])
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [("square/1.png", png(shape_image("square"))), *extra]:
            archive.writestr(name, data)
    err = refused(path, cfg, PayloadTooLarge, "dataset_too_large")
    assert err.details["declared_bytes"] > 20_000


def test_decoded_size_limit(tmp_path: Path) -> None:
    cfg = Settings(database_url="sqlite://", data_dir=tmp_path, max_decompressed_bytes=1_000)
    err = refused(two_classes(tmp_path / "a.zip"), cfg, PayloadTooLarge, "dataset_too_large")
    assert err.details["images"] == 2


def test_corrupt_member_data(tmp_path: Path, cfg: Settings) -> None:
    path = two_classes(tmp_path / "a.zip")
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("square/001.png")
    raw[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF  # stored data: CRC fails
    path.write_bytes(bytes(raw))
    err = refused(path, cfg, InvalidInput, "unreadable_member")
    assert err.details == {"member": "square/001.png"}


def test_deadline_is_checked_every_hundred_images(tmp_path: Path, cfg: Settings) -> None:
    calls: list[int] = []

    def clock() -> float:
        calls.append(1)
        return 0.0

    extra = [(f"circle/{i}.png", png(shape_image("circle", 8))) for i in range(248)]
    path = two_classes(tmp_path / "a.zip", extra)
    parse_images(path, shape=GRAY, settings=cfg, deadline=Deadline(60, clock))
    assert len(calls) >= 1 + 3  # the deadline's start, then once per phase and 100 images
    with pytest.raises(PayloadTooLarge) as info:
        parse_images(path, shape=GRAY, settings=cfg, deadline=Deadline(-1))
    assert info.value.code == "parse_budget_exceeded"


# ---------------------------------------------------------------------------------------------
# Predict


def test_decode_images_refusals(cfg: Settings) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_images([], shape=GRAY, settings=cfg)
    assert info.value.code == "no_files"
    one = ("a.png", png(shape_image("circle")))
    with pytest.raises(PayloadTooLarge) as big:
        decode_images([one] * 1001, shape=GRAY, settings=cfg)
    assert big.value.code == "too_many_files"
    with pytest.raises(InvalidInput) as bad:
        decode_images([one, ("notes.txt", b"hello")], shape=GRAY, settings=cfg)
    assert bad.value.code == "not_an_image"
    assert bad.value.details == {"field": "file", "filename": "notes.txt"}
    with pytest.raises(PayloadTooLarge) as bomb:
        decode_images([("b.png", png_header_only(30000, 30000))], shape=GRAY, settings=cfg)
    assert bomb.value.code == "image_too_large"
    assert bomb.value.details["filename"] == "b.png"
