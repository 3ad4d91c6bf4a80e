"""Upload parsing speed and memory: narrow and wide CSVs, NPZ, Parquet and image archives.

    .venv/bin/python bench/upload_speed.py [--mb 100] [--only narrow,wide,npz,parquet,images]

Writes, in a temporary directory, a CSV of 20 columns (19 features, a 0/1 label), a CSV of 5,000
columns (4,999 features, a 0/1 label), both of values like ``0.123456``, and an uncompressed NPZ
(``X`` float64, ``y`` int64), each about --mb MB; the narrow table as Parquet; and a zip of 64 x
64 PNGs in two class folders (decoded and resized to 32 x 32: images per second). Each file is
then parsed by ``core.datasets.parse_upload`` in a fresh Python process, so that the process's
peak RSS (``VmHWM`` in /proc/self/status) is that one parse's; beside it, polars' own
``pl.read_csv`` of the same file (also in a fresh process) as the floor a CSV parse can hope
for.

Printed per file: MB/s, peak RSS growth over the process's baseline after imports divided by
the file size (what the parse itself costs), and the absolute peak. No assertions: compare the
rows of one run with each other (the machine is shared, absolute figures move).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MB = 1_000_000
NARROW, WIDE = 20, 5_000
# "0.123456," is 9 bytes a value.
BYTES_PER_VALUE = 9


def _vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _write_csv(path: Path, columns: int, target_bytes: int, seed: int) -> None:
    import polars as pl

    rng = np.random.default_rng(seed)
    rows = max(2, target_bytes // (columns * BYTES_PER_VALUE))
    names = [f"f{i}" for i in range(columns - 1)]
    # Written in blocks of rows so that generating a wide file never holds it all twice.
    block = max(1, 2_000_000 // columns)
    with path.open("wb") as handle:
        handle.write((",".join([*names, "label"]) + "\n").encode())
        for start in range(0, rows, block):
            n = min(block, rows - start)
            values = rng.random((n, columns - 1))
            frame = pl.DataFrame(values, schema=names, orient="row").with_columns(
                pl.Series("label", rng.integers(0, 2, n))
            )
            frame.write_csv(handle, include_header=False, float_precision=6)


def _write_npz(path: Path, target_bytes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    columns = 50
    rows = max(2, target_bytes // (columns * 8))
    np.savez(path, X=rng.random((rows, columns)), y=rng.integers(0, 3, rows))


def _ensure(csv: Path, columns: int, target_bytes: int) -> Path:
    if not csv.exists():
        _write_csv(csv, columns, target_bytes, 1)
    return csv


def _write_parquet(path: Path, csv: Path) -> None:
    """The narrow CSV's table as Parquet (the same values, typed and compressed)."""
    import polars as pl

    pl.read_csv(csv).write_parquet(path)


def _write_images(path: Path, target_bytes: int, seed: int) -> None:
    """A zip of 64 x 64 grayscale PNGs (noise and a disc, so they do not compress away) in two
    class folders, about ``target_bytes`` in all."""
    import io
    import zipfile

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as archive:
        i = written = 0
        while written < target_bytes:
            pixels = (rng.random((64, 64)) * 80).astype(np.uint8)
            image = Image.fromarray(pixels, mode="L")
            r = int(rng.integers(8, 20))
            ImageDraw.Draw(image).ellipse((32 - r, 32 - r, 32 + r, 32 + r), fill=255)
            png = io.BytesIO()
            image.save(png, "PNG")
            archive.writestr(f"{'ab'[i % 2]}/{i:06d}.png", png.getvalue())
            written += len(png.getvalue())
            i += 1


def _child(mode: str, path: Path) -> None:
    """Runs in a fresh process: one parse, then a JSON line of figures on stdout."""
    if mode.startswith("polars"):
        import polars as pl

        read = pl.read_parquet if mode == "polars-parquet" else pl.read_csv
        baseline = _vm_hwm()
        started = time.perf_counter()
        frame = read(path)
        seconds = time.perf_counter() - started
        shape: list[int] = [frame.height, frame.width]
    else:
        sys.path.insert(0, str(REPO))
        from core.config import Settings
        from core.datasets import parse_upload

        settings = Settings(
            database_url="sqlite://",
            data_dir=Path(tempfile.gettempdir()),
            max_upload_bytes=4 * 1024 * MB,
            max_decompressed_bytes=4 * 1024 * MB,
            parse_budget_seconds=3600,
        )
        baseline = _vm_hwm()
        started = time.perf_counter()
        parsed = parse_upload(
            path, filename=path.name, content_type=None, label=None, settings=settings
        )
        seconds = time.perf_counter() - started
        shape = [parsed.n_rows, parsed.n_features]
    print(json.dumps({"seconds": seconds, "baseline": baseline, "peak": _vm_hwm(), "shape": shape}))


def _measure(mode: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100.0, help="size of each file in MB")
    parser.add_argument(
        "--only", default="narrow,wide,npz,parquet,images", help="comma-separated subset"
    )
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return

    wanted = args.only.split(",")
    target = int(args.mb * MB)
    with tempfile.TemporaryDirectory(prefix="upload_speed_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, tuple[Path, Callable[[Path], None]]] = {
            "narrow": (folder / "narrow.csv", lambda p: _write_csv(p, NARROW, target, 1)),
            "wide": (folder / "wide.csv", lambda p: _write_csv(p, WIDE, target, 2)),
            "npz": (folder / "data.npz", lambda p: _write_npz(p, target, 3)),
            "parquet": (
                folder / "narrow.parquet",
                lambda p: _write_parquet(p, _ensure(folder / "narrow.csv", NARROW, target)),
            ),
            "images": (folder / "images.zip", lambda p: _write_images(p, target, 4)),
        }
        header = (
            f"{'file':<7} {'MB':>7} {'rows x features':>17} {'parse s':>8} {'MB/s':>7} "
            f"{'peak/file':>9} {'peak MB':>8} {'polars s':>9} {'MB/s':>7} {'peak/file':>9}"
        )
        print(header)
        print("-" * len(header))
        for name in wanted:
            path, write = files[name]
            if not path.exists():
                write(path)
            size = path.stat().st_size
            ours = _measure("parse", path)
            floor = {"narrow": "polars", "wide": "polars", "parquet": "polars-parquet"}.get(name)
            theirs = _measure(floor, path) if floor else None
            rows, features = ours["shape"]
            growth = (ours["peak"] - ours["baseline"]) / size
            line = (
                f"{name:<7} {size / MB:>7.1f} {f'{rows} x {features}':>17} "
                f"{ours['seconds']:>8.2f} {size / MB / ours['seconds']:>7.1f} "
                f"{growth:>9.2f} {ours['peak'] / MB:>8.0f}"
            )
            if theirs is not None:
                line += (
                    f" {theirs['seconds']:>9.2f} {size / MB / theirs['seconds']:>7.1f} "
                    f"{(theirs['peak'] - theirs['baseline']) / size:>9.2f}"
                )
            if name == "images":
                line += f" {'':>9} {rows / ours['seconds']:>7.0f} images/s"
            print(line, flush=True)
    if "images" in wanted:
        print(
            "images: rows x features is pictures x pixels (64 x 64 PNGs decoded and resized to "
            "32 x 32, the default size); images/s: pictures decoded and resized per second"
        )
    print(
        "\npeak/file: growth of the process's peak RSS (VmHWM) over its baseline after imports, "
        "divided by the file size; peak MB: the absolute peak."
    )


if __name__ == "__main__":
    main()
