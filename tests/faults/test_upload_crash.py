"""Finding 6: kill -9 of the API during an upload left ``uploads/upload-*.part`` behind, and
nothing ever removed it. Now an API process sweeps stale ones when it starts (and every
reconciler pass does). Real uvicorn on PostgreSQL + Redis (tests.security.live)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import wait_for
from tests.security.live import LiveApi

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.redis]

MiB = 1024 * 1024


def _start_upload(port: int, key: str, declared: int, sent: int) -> socket.socket:
    """A multipart upload that declares ``declared`` bytes and sends ``sent`` of them."""
    boundary = "descent-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nx0,x1,y\r\n"
    ).encode()
    request = (
        f"POST /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(request + head)
    row = b"1.5,2.5,0\n" * 6554  # about 64 KiB
    done = len(head)
    while done < sent:
        sock.sendall(row)
        done += len(row)
    return sock


@pytest.mark.timeout(120)
def test_a_crash_mid_upload_leaves_no_part_file_after_restart(tmp_path: Path) -> None:
    with LiveApi(tmp_path) as live:
        uploads = live.settings.data_dir / "uploads"
        sock = _start_upload(live.port, live.key, declared=200 * MiB, sent=8 * MiB)
        try:
            parts = wait_for(
                lambda: list(uploads.glob("upload-*.part")) or None,
                timeout=20,
                what="the upload's spool file",
            )
            assert parts and parts[0].stat().st_size > 0
            os.killpg(live.child.pid, signal.SIGKILL)  # the fault: the API dies mid-body
            live.child.wait(10)
        finally:
            sock.close()
        live.stop_api()
        # The fault happened: the spool file outlived its process.
        assert [p for p in parts if p.exists()] == parts
        time.sleep(1.2)
        # A restarted API that counts an untouched spool file as stale after one second.
        live.start_api(DESCENT_STALE_UPLOAD_SECONDS="1")
        wait_for(lambda: not any(p.exists() for p in parts), timeout=10, what="the sweep at start")
        assert list(uploads.glob("upload-*.part")) == []
