"""/v1/models/{id}/onnx: a trained model as an ONNX file (filled in by the ONNX export work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/models", tags=["models"])
