"""`models.preprocess.Preprocessor.transform` as ONNX nodes: raw columns in, network inputs out."""

from __future__ import annotations

import numpy as np

from core.onnx_export.graph import ELEM_TYPE, ML_DOMAIN, Graph
from models.preprocess import Preprocessor

# What a missing categorical value is in a string tensor, which has no null (as in a CSV
# upload, where an empty cell is missing).
MISSING_CATEGORY = ""


def missing_category(categories: list[str]) -> str:
    """The string that selects a column's "missing" slot: "" unless "" is itself a category
    (possible only for data handed to the engine directly), in which case no input reaches it."""
    return MISSING_CATEGORY if MISSING_CATEGORY not in categories else "\x00missing"


def network_inputs(
    g: Graph,
    pre: Preprocessor,
    *,
    numeric: str | None,
    categorical: list[str],
    dtype: np.dtype[np.floating],
) -> str:
    """(N, n_inputs) in the network's dtype, in Descent's order: the numeric columns, their
    missing indicators, then each categorical column's one-hot block (and missing slot).

    ``numeric`` is an (N, k) double value with NaN for missing, or None without numeric columns;
    ``categorical`` holds one (N, 1) string value per categorical column.
    """
    parts: list[str] = []
    if numeric is not None:
        x, missing = numeric, None
        # Same float64 operations in the same order as transform: the result is bit-identical.
        # With impute "none" Descent refuses a NaN; here it propagates to the outputs instead.
        if pre.impute != "none":
            missing = g.op("IsNaN", [x])
            x = g.op("Where", [missing, g.const("fill", pre.fill.astype(np.float64)), x])
        x = g.op("Sub", [x, g.const("mean", pre.mean.astype(np.float64))])
        x = g.op("Div", [x, g.const("scale", pre.scale.astype(np.float64))])
        parts.append(g.cast(x, dtype, source=np.dtype(np.float64)))
        if pre.indicators:
            assert missing is not None  # fit adds indicators only when imputing
            columns = g.const("indicators", np.asarray(pre.indicators, dtype=np.int64))
            flags = g.op("Gather", [missing, columns], axis=1)
            parts.append(g.op("Cast", [flags], to=ELEM_TYPE[dtype]))
    for column, categories, slot in zip(categorical, pre.categories, pre.missing_slot, strict=True):
        vocabulary = list(categories) + ([missing_category(categories)] if slot else [])
        if not vocabulary:
            continue  # a column with no category contributes no input
        # zeros=1: a category not seen in training encodes as all zeros, as transform does.
        onehot = g.op(
            "OneHotEncoder", [column], domain=ML_DOMAIN, cats_strings=vocabulary, zeros=1
        )  # (N, 1, C) float
        flat = g.op("Flatten", [onehot], axis=1)
        parts.append(g.cast(flat, dtype, source=np.dtype(np.float32)))
    return g.concat(parts)
