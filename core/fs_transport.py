"""kombu's filesystem transport with an atomic put: the embedded broker of ``descent serve``.

kombu's own ``_put`` creates the message file and then writes it, and its ``_get`` moves and reads
any file with the queue's name: a worker polling 20 times a second can take a message before its
bytes are there and die on the empty JSON (``JSONDecodeError`` in ``_get``, seen under load, and
``descent serve`` stops with it). Here the message is written under a name ``_get`` skips (it
takes only names ending in ``.<queue>.msg``) and renamed into place, which is atomic within one
folder, so a reader sees a whole message or none.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        staging = f"{final}.part"
        with open(staging, "wb") as out:
            out.write(str_to_bytes(dumps(payload)))  # type: ignore[no-untyped-call]
        os.replace(staging, final)


class Transport(filesystem.Transport):
    Channel = Channel
