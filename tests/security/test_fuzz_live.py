"""S12 over real HTTP: the OpenAPI document fuzzed as a foreign tenant against a live uvicorn
process on PostgreSQL and Redis (tests.security.live), with the checks of
tests.security.fuzzing. The finding this answers was made this way: in-process fuzzing never
saw PostgreSQL's integer range or a cursor at the edge of time cross a real socket.

Bounded to about three minutes on this 2-core machine: ``DESCENT_FUZZ_EXAMPLES`` cases per
operation (default below: 300 took 7 minutes once the registry, model list and ONNX routes were
in the document, half the suite's budget), each replayed with tenant A's ids. Set it higher for
a longer hunt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from tests.security.conftest import make_tenant
from tests.security.fuzzing import World, app_schema, check_case, fuzz_settings
from tests.security.live import LiveApi

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

MAX_EXAMPLES = int(os.environ.get("DESCENT_FUZZ_EXAMPLES", "120"))


class LiveWorld:
    def __init__(self, api: LiveApi, world: World) -> None:
        self.api, self.world = api, world
        self.session = requests.Session()


@pytest.fixture(scope="module")
def live_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWorld]:
    # The fuzzer sends thousands of requests as one tenant: a rate limit would turn most of
    # them into 429s that test nothing.
    env = {"DESCENT_RATE_LIMIT_PER_MINUTE": "10000000"}
    with LiveApi(tmp_path_factory.mktemp("fuzz-live"), env=env) as api:
        with httpx.Client(base_url=api.base, timeout=30) as http:
            world = World(
                make_tenant(http, api.db, api.settings, "live-a"),
                make_tenant(http, api.db, api.settings, "live-b"),
            )
        live = LiveWorld(api, world)
        yield live
        live.session.close()


schema = app_schema(live=True)


@schema.parametrize()
@fuzz_settings(MAX_EXAMPLES)
def test_fuzz_live_as_a_foreign_tenant(case: Any, live_world: LiveWorld) -> None:
    def call(c: Any, headers: dict[str, str]) -> Any:
        return c.call(
            base_url=live_world.api.base, session=live_world.session, headers=headers, timeout=30
        )

    check_case(case, live_world.world, call)
