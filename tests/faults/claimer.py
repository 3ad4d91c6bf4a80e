"""A claiming process for the D1/D3 race: ``python -m tests.faults.claimer URL IDS OUT GO``.

Touches OUT.ready once it is connected, waits for the file GO to exist (the parent creates it
when every claimer is ready, so they start together rather than in the order Python finished
importing), then tries to claim every
run id in IDS (shuffled) with the worker's claim, and writes one JSON line per outcome to OUT:
``{"claimed": id}`` or ``{"error": "..."}``."""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from pathlib import Path

from core.runs.lease import claim
from store.session import Database, make_engine_for_url


def main(url: str, ids_file: str, out_file: str, go_file: str) -> None:
    ids = [uuid.UUID(x) for x in Path(ids_file).read_text().split()]
    random.shuffle(ids)
    db = Database(make_engine_for_url(url))
    with db.engine.connect():
        pass
    Path(out_file + ".ready").touch()
    deadline = time.monotonic() + 30
    while not Path(go_file).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = []
    for rid in ids:
        try:
            if claim(db, rid) is not None:
                lines.append({"claimed": str(rid)})
        except Exception as exc:
            lines.append({"error": f"{type(exc).__name__}: {exc}"[:500]})
    db.dispose()
    Path(out_file).write_text("".join(json.dumps(x) + "\n" for x in lines))


if __name__ == "__main__":
    main(*sys.argv[1:5])
