"""The dashboard: server-rendered pages under /ui (templates and assets in api/ui)."""

from fastapi import APIRouter

from api.routes.dashboard import data, runs, session, sweeps

router = APIRouter(include_in_schema=False)
router.include_router(session.router)
router.include_router(runs.router)
router.include_router(runs.compare_router)
router.include_router(data.router)
router.include_router(sweeps.router)
