"""The embedded broker's transport (core.fs_transport): a message is in the queue folder whole or
not at all. kombu's own put creates the file and then writes it, so a worker polling the folder
could take an empty message and crash on its JSON."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu.connection import Connection

from core import fs_transport
from core.broker import EMBEDDED_TRANSPORT, celery_config, transport_options
from core.config import Settings


def _connection(tmp_path: Path) -> tuple[Connection, Settings]:
    settings = Settings(data_dir=tmp_path, broker_url=f"filesystem://{tmp_path / 'broker'}")
    options = transport_options(settings)
    for key in ("data_folder_in", "control_folder"):
        Path(options[key]).mkdir(parents=True, exist_ok=True)
    conn = Connection("filesystem://", transport=EMBEDDED_TRANSPORT, transport_options=options)
    return conn, settings


def test_celery_uses_the_atomic_transport_for_the_embedded_broker(tmp_path: Path) -> None:
    conn, settings = _connection(tmp_path)
    assert celery_config(settings)["broker_transport"] == EMBEDDED_TRANSPORT
    assert celery_config(Settings(broker_url="redis://x:1/0"))["broker_transport"] is None
    with conn:
        assert isinstance(conn.transport, fs_transport.Transport)


def test_messages_put_while_a_consumer_polls_arrive_whole(tmp_path: Path) -> None:
    """A consumer polling the folder as fast as it can while 300 large messages are put: each
    arrives whole. (The transport's own methods: kombu's routing state is shared by every
    connection of a process, which would mix this test's folders with other tests'.)"""
    conn, _ = _connection(tmp_path)
    sent = [{"run": i, "pad": "x" * 20_000} for i in range(300)]
    got: list[Any] = []
    with conn, conn.clone() as other:
        producer, consumer = conn.default_channel, other.default_channel

        def consume() -> None:
            deadline = time.monotonic() + 30
            while len(got) < len(sent) and time.monotonic() < deadline:
                try:
                    got.append(consumer._get("descent.runs"))
                except Empty:
                    continue

        reader = threading.Thread(target=consume)
        reader.start()
        for body in sent:
            producer._put("descent.runs", body)
        reader.join(40)
    assert sorted(got, key=lambda m: m["run"]) == sent


def test_a_message_not_yet_renamed_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop the put between writing and renaming: the consumer sees nothing, not a torn file."""
    conn, settings = _connection(tmp_path)

    def interrupted(_src: str, _dst: str) -> None:
        raise KeyboardInterrupt

    with conn:
        channel = conn.default_channel
        monkeypatch.setattr(os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            channel._put("descent.runs", {"run": 1})
        monkeypatch.undo()
        folder = Path(transport_options(settings)["data_folder_in"])
        assert [p.suffix for p in folder.iterdir()] == [".part"]  # written, not yet in place
        with pytest.raises(Empty):
            channel._get("descent.runs")
        channel._put("descent.runs", {"run": 2})
        assert channel._get("descent.runs") == {"run": 2}
