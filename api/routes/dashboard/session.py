"""Sign-in and sign-out. The key arrives in a POST body (never a URL) and leaves as an HttpOnly,
SameSite=Strict cookie holding a session token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api import ui
from api.deps import SettingsDep, WriteSession
from api.routes.dashboard.deps import PageUser, check_form_post
from core import web_sessions
from core.errors import Unauthorized

router = APIRouter(include_in_schema=False)


@router.get("/")
@router.get(ui.UI)
async def home() -> RedirectResponse:
    return RedirectResponse(f"{ui.UI}/runs", status_code=307)


@router.get(ui.LOGIN)
async def login_form(request: Request) -> Response:
    return ui.page(request, "login.html")


@router.post(ui.LOGIN)
def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=512)],
    session: WriteSession,
    settings: SettingsDep,
) -> Response:
    check_form_post(request, None, None)
    try:
        new = web_sessions.sign_in(session, api_key.strip(), settings)
    except Unauthorized as exc:
        return ui.page(request, "login.html", 401, error=exc.message)
    response = RedirectResponse(f"{ui.UI}/runs", status_code=303)
    response.set_cookie(
        web_sessions.COOKIE_NAME,
        new.token,
        max_age=new.max_age_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post(f"{ui.UI}/logout")
def logout(
    request: Request,
    user: PageUser,
    csrf_token: Annotated[str, Form(max_length=128)],
    session: WriteSession,
) -> Response:
    check_form_post(request, user, csrf_token)
    web_sessions.sign_out(session, request.cookies.get(web_sessions.COOKIE_NAME))
    response = RedirectResponse(ui.LOGIN, status_code=303)
    response.delete_cookie(web_sessions.COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response
