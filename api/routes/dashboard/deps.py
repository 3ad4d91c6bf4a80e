"""What every dashboard page depends on: the signed-in tenant (a missing or ended session sends
the browser to the sign-in form, through the one error mapping in api.errors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.principal import signed_in
from core.errors import Forbidden
from core.web_sessions import COOKIE_NAME, SignedIn, check_csrf


async def page_user(request: Request) -> SignedIn:
    signed = await signed_in(request.app.state, request.cookies.get(COOKIE_NAME))
    request.state.signed_in = signed  # api.ui.page puts its CSRF token in the page
    return signed


PageUser = Annotated[SignedIn, Depends(page_user)]


def check_form_post(request: Request, user: SignedIn | None, csrf_token: str | None) -> None:
    """A form posted from our own pages: same origin, and (once signed in) the session's CSRF
    token in the form."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("cross-site form post refused", {"origin": origin}, code="csrf_failed")
    if user is not None:
        check_csrf(request.method, user.csrf_token, csrf_token)
