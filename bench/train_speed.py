"""Training speed: Descent's engine beside PyTorch (CPU) on the same networks, in one run.

    .venv/bin/python bench/train_speed.py [--reps 3] [--quick] [--no-torch]

T1: digits, 64-128-64-10 relu, SGD lr 0.05 momentum 0.9, batch 32, 50 epochs (samples/s).
T2: 200,000 x 100 float32, 10 classes, 100-512-512-10, batch 256, 3 epochs (samples/s, and the
    fraction of this machine's float32 GEMM peak, measured here first); again with dropout 0.2
    on both hidden layers (torch: nn.Dropout after each ReLU).
T3: microseconds per SGD step on the T1 network at batch 1, 8 and 32 (in-loop: fit time / steps).
Figures are the best of `--reps` repetitions, the trainers taking turns within each repetition
(descent, torch, descent, torch, ...) so that both meet the same phases of a shared machine's
load; compare ratios measured in the same run, since these 2-core machines are shared and noisy.
The GEMM peak is measured at the start and again after T2, and the higher figure is used.
Needs scikit-learn; torch is optional (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.model_selection import train_test_split

from models import train

Trainer = Callable[[np.ndarray, np.ndarray, dict[str, Any]], float]
# Issue 12's targets, as ratios to torch in the same run (T2 also: >= 65 % of the GEMM peak).
TARGETS = {
    "T1 digits samples/s": ">= 5x",
    "T2 200k x 100 samples/s": ">= 1.1x and >= 65% of peak",
    "T3 us/step batch 1": "<= 30 us, or >= 8x",
    "T3 us/step batch 32": "<= 60 us, or >= 8x",
}


def gemm_gflops(n: int = 1024, seconds: float = 0.5) -> float:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n)).astype(np.float32)
    b = rng.normal(size=(n, n)).astype(np.float32)
    out = np.empty_like(a)
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            np.matmul(a, b, out=out)
            count += 1
        best = max(best, 2 * n**3 * count / (time.perf_counter() - start) / 1e9)
    return best


def descent_fit(x: np.ndarray, y: np.ndarray, cfg: dict[str, Any]) -> float:
    """Seconds spent in training epochs (the engine's own per-epoch clock)."""
    spec = {
        "layers": [
            {"units": u, "activation": "relu", "dropout": cfg.get("dropout", 0.0)}
            for u in cfg["hidden"]
        ],
        "optimizer": {"name": "sgd", "learning_rate": cfg["lr"], "momentum": 0.9},
        "batch_size": cfg["batch"],
        "epochs": cfg["epochs"],
        "validation_split": 0.0,
        "initializer": "glorot_uniform",
        "seed": cfg.get("seed", 0),
        # Features arrive standardized, as they do for the other trainers.
        "preprocessing": {"standardize": False},
    }
    result = train(x, y, spec)
    return float(sum(h["seconds"] for h in result.history))


def torch_fit(x: np.ndarray, y: np.ndarray, cfg: dict[str, Any]) -> float:
    import torch

    torch.manual_seed(cfg.get("seed", 0))
    sizes = [x.shape[1], *cfg["hidden"], int(y.max()) + 1]
    layers: list[Any] = []
    dropout = cfg.get("dropout", 0.0)
    for d_in, d_out in itertools.pairwise(sizes):
        layers += [torch.nn.Linear(d_in, d_out), torch.nn.ReLU()]
        if dropout:
            layers.append(torch.nn.Dropout(dropout))
    net = torch.nn.Sequential(*layers[: -2 if dropout else -1])
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=cfg["lr"], momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    start = time.perf_counter()
    for _ in range(cfg["epochs"]):
        order = torch.randperm(len(xt))
        xs, ys = xt[order], yt[order]
        for i in range(0, len(xs), cfg["batch"]):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xs[i : i + cfg["batch"]]), ys[i : i + cfg["batch"]])
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def best_times(
    trainers: dict[str, Trainer], x: np.ndarray, y: np.ndarray, cfg: dict[str, Any], reps: int
) -> dict[str, float]:
    """Best seconds per trainer; the trainers take turns within each repetition."""
    for fn in trainers.values():
        fn(x, y, {**cfg, "epochs": 1})  # warm-up: imports, allocations, BLAS threads
    best = {name: float("inf") for name in trainers}
    for _ in range(reps):
        for name, fn in trainers.items():
            best[name] = min(best[name], fn(x, y, cfg))
    return best


def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    mean, std = x_train.mean(0), x_train.std(0)
    std[std == 0] = 1.0
    return ((x_train - mean) / std).astype(np.float32), y_train


def synthetic(quick: bool) -> tuple[np.ndarray, np.ndarray]:
    n = 20_000 if quick else 200_000
    x, y = make_classification(
        n_samples=n + n // 10,
        n_features=100,
        n_informative=20,
        n_redundant=10,
        n_classes=10,
        random_state=0,
    )
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    return x[:n], y[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="T2 on 20,000 rows")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    trainers: dict[str, Trainer] = {"descent": descent_fit}
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(2)
            trainers["torch"] = torch_fit
        except ImportError:
            print("torch not installed: descent only")

    peak = gemm_gflops()
    print(f"float32 GEMM peak (1024^3, best of 3): {peak:.0f} GFLOP/s\n")
    rows: list[tuple[str, str, float, str]] = []

    x1, y1 = digits()
    t1: dict[str, Any] = {"hidden": [128, 64], "lr": 0.05, "batch": 32, "epochs": 50}
    for name, secs in best_times(trainers, x1, y1, t1, args.reps).items():
        rows.append(("T1 digits samples/s", name, len(x1) * t1["epochs"] / secs, ""))

    x2, y2 = synthetic(args.quick)
    t2: dict[str, Any] = {"hidden": [512, 512], "lr": 0.05, "batch": 256, "epochs": 3}
    flops_per_sample = 6 * (100 * 512 + 512 * 512 + 512 * 10)
    t2_rows: list[tuple[str, str, float]] = []
    for label, dropout in (("T2 200k x 100 samples/s", 0.0), ("T2 dropout 0.2 samples/s", 0.2)):
        cfg = {**t2, "dropout": dropout}
        for name, secs in best_times(trainers, x2, y2, cfg, max(1, args.reps - 1)).items():
            t2_rows.append((label, name, len(x2) * t2["epochs"] / secs))
    peak = max(peak, gemm_gflops())
    print(f"float32 GEMM peak again after T2: {peak:.0f} GFLOP/s (the higher is used)\n")
    for label, name, rate in t2_rows:
        gflops = rate * flops_per_sample / 1e9
        rows.append((label, name, rate, f"{gflops:.0f} GFLOP/s = {gflops / peak:.0%} of peak"))

    for batch, epochs in ((1, 3), (8, 20), (32, 90)):
        cfg = {"hidden": [128, 64], "lr": 0.05 * batch / 32, "batch": batch, "epochs": epochs}
        steps = epochs * -(-len(x1) // batch)
        for name, secs in best_times(trainers, x1, y1, cfg, args.reps).items():
            rows.append((f"T3 us/step batch {batch}", name, secs / steps * 1e6, ""))

    print(f"{'case':<26}{'trainer':<10}{'figure':>14}  note")
    for case, name, value, note in rows:
        print(f"{case:<26}{name:<10}{value:>14,.1f}  {note}")
    if "torch" in trainers:
        print("\ndescent / torch (samples/s ratio; for T3 torch time / descent time):")
        for i in range(0, len(rows), 2):
            case, _, d, _ = rows[i]
            t = rows[i + 1][2]
            ratio = t / d if case.startswith("T3") else d / t
            print(f"  {case:<26}{ratio:5.2f}x   target {TARGETS.get(case, '-')}")


if __name__ == "__main__":
    main()
