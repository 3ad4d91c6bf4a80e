"""The model page's predict form on a model with a categorical column (penguins): category
pickers, an empty number sent as missing, a CSV with quoted fields, each answered as the API
answers; and the weights download fetched with the page's session cookie."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Locator, Page, expect

from tests.ui.conftest import Server, shot
from tests.ui.world import api, sign_in, submit, wait_final


def _shown(prediction: Locator) -> dict[str, float]:
    bars = prediction.locator(".bar-row")
    return {
        b.get_attribute("data-class") or "": float(b.get_attribute("data-probability") or "nan")
        for b in bars.all()
    }


def _api_predict(server: Server, model_id: str, records: list[dict[str, Any]]) -> Any:
    with api(server) as http:
        response = http.post(f"/v1/models/{model_id}/predict", json={"records": records})
    assert response.status_code == 200, response.text
    return response.json()


def _expect_same(shown: dict[str, float], answer: Any, row: int) -> None:
    want = dict(zip(map(str, answer["classes"]), answer["probabilities"][row], strict=True))
    assert shown.keys() == want.keys()
    np.testing.assert_allclose(
        [shown[k] for k in want], list(want.values()), rtol=1e-5
    )  # float32: one row and many round differently


def test_penguins_predicted_with_category_pickers_as_the_api_does(
    server: Server, page: Page, tmp_path: Path, console_errors: list[str]
) -> None:
    with warnings.catch_warnings():  # its module imports FastAPI's TestClient
        warnings.simplefilter("ignore")
        from tests.api.test_missing_values_api import penguins_csv
    content, _ = penguins_csv(120)
    with api(server) as http:
        dataset = http.post("/v1/datasets", files={"file": ("penguins.csv", content)}).json()
    assert dataset["feature_types"] == ["numeric", "numeric", "categorical"], dataset
    spec = {"layers": [{"units": 16}], "epochs": 15, "seed": 3,
            "optimizer": {"name": "adam", "learning_rate": 0.01}}  # fmt: skip
    model_id = wait_final(server, submit(server, dataset["id"], spec))["model_id"]
    assert model_id

    sign_in(page, server)
    page.goto(f"{server.base}/ui/models/{model_id}")
    form = page.get_by_test_id("predict-form")
    island = form.locator('select[name="island"]')
    options = island.locator("option").all_text_contents()
    assert {"Biscoe", "Dream", "Torgersen"} <= set(options) and "(missing)" in options
    form.locator('input[name="bill_mm"]').fill("47.5")
    # mass_g left empty: a missing value (imputed as in training), not 0.
    island.select_option("Biscoe")
    form.get_by_test_id("predict-submit").click()
    result = page.get_by_test_id("predict-result")
    expect(result.get_by_test_id("prediction")).to_have_count(1)
    expect(result.locator(".bar-row")).to_have_count(3)
    record = {"bill_mm": 47.5, "mass_g": None, "island": "Biscoe"}
    answer = _api_predict(server, model_id, [record])
    _expect_same(_shown(result.get_by_test_id("prediction")), answer, 0)
    expect(result.locator("h3")).to_have_text(str(answer["predictions"][0]))
    zero = _api_predict(server, model_id, [{**record, "mass_g": 0.0}])
    assert zero["probabilities"][0] != answer["probabilities"][0]  # so empty is not sent as 0
    shot(page, "predict-penguins")

    # A CSV as a spreadsheet writes it: quoted fields, one holding a comma (an island the
    # model never saw: ignored, as the API does), an empty field, CRLF line ends.
    table = tmp_path / "penguins-rows.csv"
    table.write_bytes(
        b'"bill_mm","mass_g","island"\r\n'
        b'38.1,3700,"Dream"\r\n'
        b'49.0,,"Torgersen"\r\n'
        b'46.2,"5000","Biscoe, the big one"\r\n'
    )
    rows: list[dict[str, Any]] = [
        {"bill_mm": 38.1, "mass_g": 3700, "island": "Dream"},
        {"bill_mm": 49.0, "mass_g": None, "island": "Torgersen"},
        {"bill_mm": 46.2, "mass_g": 5000, "island": "Biscoe, the big one"},
    ]
    form.get_by_test_id("predict-csv").set_input_files(table)
    form.get_by_test_id("predict-submit").click()
    expect(result.get_by_test_id("prediction")).to_have_count(3)
    answer = _api_predict(server, model_id, rows)
    titles = result.locator("h3").all_text_contents()
    assert titles == [f"Row {i + 1}: {p}" for i, p in enumerate(answer["predictions"])]
    for i, block in enumerate(result.get_by_test_id("prediction").all()):
        _expect_same(_shown(block), answer, i)
    expect(page.get_by_test_id("predict-error")).to_be_hidden()

    # The weights link, fetched as the browser would: the session cookie, no key.
    href = page.get_by_test_id("weights-download").get_attribute("href")
    assert href == f"/v1/models/{model_id}/weights"
    weights = page.request.get(f"{server.base}{href}")
    assert weights.ok, weights.status
    with api(server) as http:
        expected = http.get(href).content
    assert hashlib.sha256(weights.body()).digest() == hashlib.sha256(expected).digest()
    assert weights.body()[:2] == b"PK"  # an .npz is a zip
    assert console_errors == []
