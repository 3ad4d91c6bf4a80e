"""/v1/models/{id}/onnx: a trained model as an ONNX file (core.onnx_export builds it)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response

from api.deps import PrincipalDep, ReadSession
from api.schemas import ErrorResponse
from core.onnx_export import export_model

router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    responses={429: {"model": ErrorResponse, "description": "Rate limited (see Retry-After)"}},
)

_ONNX_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The model as ONNX (opset 17, ai.onnx.ml 3), preprocessing included: "
        "onnxruntime.InferenceSession(content)",
    },
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    404: {"model": ErrorResponse, "description": "No such model (or not yours)"},
    409: {"model": ErrorResponse, "description": "The model is not ready"},
    501: {"model": ErrorResponse, "description": "The server lacks the optional 'onnx' extra"},
}


# A plain def: building the graph is CPU work, so FastAPI runs it in its threadpool.
@router.get("/{model_id:uuid}/onnx", response_class=Response, responses=_ONNX_RESPONSES)
def get_onnx(model_id: uuid.UUID, principal: PrincipalDep, session: ReadSession) -> Response:
    content = export_model(session, tenant_id=principal.tenant_id, model_id=model_id)
    return Response(
        content=content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="model-{model_id}.onnx"'},
    )
