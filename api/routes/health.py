"""Liveness, readiness and version (no auth)."""

from __future__ import annotations

import logging
import platform
from importlib import metadata

import numpy as np
from fastapi import APIRouter, Request

from api.deps import DatabaseDep, SettingsDep
from api.schemas import ErrorResponse, HealthOut, ReadyOut, VersionOut
from core.errors import DependencyDown

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


def package_version() -> str:
    try:
        return metadata.version("descent")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@router.get("/healthz")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/readyz", responses={503: {"model": ErrorResponse}})
def readyz(request: Request, db: DatabaseDep, settings: SettingsDep) -> ReadyOut:
    checks: dict[str, str] = {}
    try:
        db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", never a 500
        log.warning("readiness: database: %s", exc)
        checks["database"] = "unavailable"
    broker_check = getattr(request.app.state, "broker_check", None)
    if broker_check is None:
        checks["broker"] = "not_configured"
    else:
        try:
            broker_check()
            checks["broker"] = "ok"
        except Exception as exc:
            log.warning("readiness: broker: %s", exc)
            checks["broker"] = "unavailable"
    down = [name for name, state in checks.items() if state == "unavailable"]
    if down:
        raise DependencyDown(
            f"not ready: {', '.join(down)} unavailable",
            {"checks": checks, "unavailable": down},
            retry_after=settings.retry_after_seconds,
        )
    return ReadyOut(status="ok", checks=checks)


@router.get("/version")
async def version(settings: SettingsDep) -> VersionOut:
    return VersionOut(
        version=package_version(),
        git_sha=settings.git_sha,
        numpy=np.__version__,
        python=platform.python_version(),
    )
