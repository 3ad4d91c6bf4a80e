"""The model page shows the final model's metrics: the summary figures and a per-class table
whose numbers are the API's."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import bearer
from tests.api.runs_fixtures import api, dataset_id, sent, trained

__all__ = ["api", "dataset_id", "sent", "trained"]


def test_model_page_lists_each_class(
    api: TestClient, tenant_key: str, trained: dict[str, Any]
) -> None:
    model = api.get(f"/v1/models/{trained['model_id']}", headers=bearer(tenant_key)).json()
    per_class = model["metrics"]["per_class"]
    signed_in = api.post("/ui/login", data={"api_key": tenant_key}, follow_redirects=False)
    assert signed_in.status_code == 303
    page = api.get(f"/ui/models/{model['id']}")
    assert page.status_code == 200
    table = page.text.split('data-testid="per-class"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><th>([^<]+)</th>((?:<td[^>]*>[^<]*</td>)+)</tr>", table)
    assert [name for name, _ in rows] == list(per_class["support"])
    for name, cells in rows:
        values = re.findall(r">([^<]*)</td>", cells)
        assert float(values[0]) == round(per_class["precision"][name], 3)
        assert float(values[1]) == round(per_class["recall"][name], 3)
        assert int(values[3]) == per_class["support"][name]
    for label in ("log-loss", "macro F1", "ROC AUC"):
        assert label in page.text
