"""Datasets (upload from the page), the new-run form (validated first, the error at its field),
the model page's predict form against the API, and the API docs with no internet."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from playwright.sync_api import Page, Route, expect

from tests.e2e.helpers import digits_csv, digits_split
from tests.ui.conftest import Server, origin, shot
from tests.ui.world import QUICK_SPEC, api, sign_in, submit, upload_digits, wait_final


def test_upload_then_start_a_run_from_the_page(
    server: Server, page: Page, tmp_path: Path, console_errors: list[str]
) -> None:
    X, _, y, _ = digits_split()
    csv = tmp_path / "digits-from-the-page.csv"
    csv.write_bytes(digits_csv(X, y))
    sign_in(page, server)
    page.goto(f"{server.base}/ui/datasets")
    form = page.get_by_test_id("upload-form")
    form.get_by_test_id("upload-file").set_input_files(csv)
    form.get_by_test_id("upload-label").fill("digit")
    form.get_by_test_id("upload-name").fill("from-the-page")
    form.get_by_role("button", name="Upload").click()
    expect(page.locator("h1")).to_have_text("from-the-page")
    expect(page.get_by_test_id("label-distribution").locator(".bar-row")).to_have_count(10)
    shot(page, "dataset-page")

    page.get_by_test_id("train-dataset").click()
    run_form = page.get_by_test_id("run-form")
    expect(run_form.get_by_test_id("run-dataset")).to_have_value(page.url.split("dataset_id=")[1])
    epochs = run_form.get_by_test_id("run-epochs")
    epochs.fill("0")
    run_form.get_by_test_id("run-submit").click()
    expect(page.get_by_test_id("run-form-error")).to_contain_text("spec.epochs")
    expect(epochs).to_have_class("invalid")  # the error is shown at its field
    shot(page, "new-run-invalid")
    epochs.fill("3")
    run_form.get_by_test_id("run-name").fill("started-from-the-page")
    run_form.get_by_test_id("run-submit").click()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=60_000)
    assert "/ui/runs/" in page.url
    run_id = page.url.rsplit("/", 1)[1]
    with api(server) as http:
        run = http.get(f"/v1/runs/{run_id}").json()
    assert run["name"] == "started-from-the-page" and run["spec"]["epochs"] == 3
    # A 422 from validate is the only error the page met.
    assert [e for e in console_errors if "422" not in e] == []


def test_the_predict_form_answers_what_the_api_answers(
    server: Server, page: Page, tmp_path: Path, console_errors: list[str]
) -> None:
    run_id = submit(server, upload_digits(server), QUICK_SPEC)
    model_id = wait_final(server, run_id)["model_id"]
    _, X_test, _, _ = digits_split()
    rows = X_test[:3]
    with api(server) as http:
        expected = http.post(
            f"/v1/models/{model_id}/predict", json={"inputs": rows.tolist()}
        ).json()

    sign_in(page, server)
    page.goto(f"{server.base}/ui/models/{model_id}")
    form = page.get_by_test_id("predict-form")
    for i, value in enumerate(rows[0]):
        form.locator(f'input[name="px{i}"]').fill(str(int(value)))
    form.get_by_test_id("predict-submit").click()
    result = page.get_by_test_id("predict-result")
    bars = result.locator(".bar-row")
    expect(bars).to_have_count(10)
    shown = {
        bar.get_attribute("data-class"): float(bar.get_attribute("data-probability") or "nan")
        for bar in bars.all()
    }
    want = dict(zip(map(str, expected["classes"]), expected["probabilities"][0], strict=True))
    assert shown.keys() == want.keys()
    np.testing.assert_allclose([shown[k] for k in want], list(want.values()), rtol=1e-5)  # float32
    expect(result.locator("h3")).to_have_text(str(expected["predictions"][0]))
    expect(bars.filter(has_text="%").first).to_be_visible()  # labelled as percentages
    shot(page, "predict-form")
    per_class = page.get_by_test_id("per-class")
    expect(per_class.locator("tbody tr")).to_have_count(10)  # one row per digit
    per_class.scroll_into_view_if_needed()
    shot(page, "model-per-class")

    table = tmp_path / "rows.csv"
    header = ",".join(f"px{i}" for i in range(rows.shape[1]))
    table.write_text("\n".join([header, *(",".join(map(str, map(int, r))) for r in rows)]) + "\n")
    form.get_by_test_id("predict-csv").set_input_files(table)
    form.get_by_test_id("predict-submit").click()
    expect(result.get_by_test_id("prediction")).to_have_count(3)
    titles = result.locator("h3").all_text_contents()
    assert titles == [f"Row {i + 1}: {p}" for i, p in enumerate(expected["predictions"])]
    assert console_errors == []


def test_docs_and_redoc_render_from_the_server_alone(
    server: Server, page: Page, console_errors: list[str]
) -> None:
    """With every other host unreachable, as on a machine without internet."""
    elsewhere: list[str] = []

    def offline(route: Route) -> None:
        elsewhere.append(route.request.url)
        route.abort("internetdisconnected")

    page.context.route(lambda url: origin(url) != server.base, offline)
    page.goto(f"{server.base}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Descent", timeout=20_000)
    expect(page.locator(".opblock").first).to_be_visible()
    shot(page, "docs")
    page.goto(f"{server.base}/redoc")
    expect(page.locator("h1").first).to_contain_text("Descent", timeout=20_000)
    expect(page.locator("li[data-item-id]").nth(10)).to_be_attached()  # the operations menu
    shot(page, "redoc")
    # ReDoc's sidebar logo is the one thing that asks for another host; the page's CSP blocks
    # it even online (tests/api/test_offline_docs.py), and it hides itself.
    assert all(url.startswith("https://cdn.redoc.ly/") for url in elsewhere), elsewhere
    assert [e for e in console_errors if "cdn.redoc.ly" not in e] == []


def test_a_regression_run_ends_with_predicted_vs_actual_and_predicts_a_value(
    server: Server, page: Page, console_errors: list[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=300)
    table = "a,b,c,target\n" + "".join(
        f"{r[0]},{r[1]},{r[2]},{t}\n" for r, t in zip(x, y, strict=True)
    )
    with api(server) as http:
        dataset = http.post("/v1/datasets", files={"file": ("reg.csv", table, "text/csv")}).json()
    assert dataset["task"] == "regression"
    run_id = submit(server, dataset["id"], {"layers": [{"units": 16}], "epochs": 30, "seed": 2})
    model_id = wait_final(server, run_id)["model_id"]
    sign_in(page, server)
    page.goto(f"{server.base}/ui/runs/{run_id}")
    chart = page.get_by_test_id("predicted-vs-actual")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(page.get_by_text("R²").first).to_be_visible()
    shot(page, "run-page-regression")
    page.goto(f"{server.base}/ui/models/{model_id}")
    form = page.get_by_test_id("predict-form")
    for name, value in zip("abc", (1.0, 0.0, 0.0), strict=True):
        form.locator(f'input[name="{name}"]').fill(str(value))
    form.get_by_test_id("predict-submit").click()
    with api(server) as http:
        expected = http.post(
            f"/v1/models/{model_id}/predict", json={"records": [{"a": 1.0, "b": 0.0, "c": 0.0}]}
        ).json()["predictions"][0]
    shown = page.get_by_test_id("predict-result").locator("h3")
    expect(shown).to_have_text(str(expected))
    assert abs(float(shown.text_content() or "nan") - 2.0) < 0.5  # the known slope of a
    assert page.get_by_test_id("predict-result").locator(".bar-row").count() == 0
    assert console_errors == []


def test_cat_or_dog_pictures_in_and_probabilities_out(
    server: Server, page: Page, tmp_path: Path, console_errors: list[str]
) -> None:
    """The seed example on the page: a zip of class folders uploaded, a model trained, a
    picture predicted as labelled probability bars equal to the API's."""
    from tests.api.image_archives import digits_as_pngs

    archive, held_out = digits_as_pngs()
    zipped = tmp_path / "digits.zip"
    zipped.write_bytes(archive)
    sign_in(page, server)
    page.goto(f"{server.base}/ui/datasets")
    form = page.get_by_test_id("upload-form")
    form.get_by_test_id("upload-file").set_input_files(zipped)
    form.get_by_test_id("upload-name").fill("digit-pictures")
    form.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("label-distribution").locator(".bar-row")).to_have_count(10)
    dataset_id = page.url.rsplit("/", 1)[1]
    run_id = submit(server, dataset_id, {**QUICK_SPEC, "epochs": 15})
    model_id = wait_final(server, run_id)["model_id"]
    pictures = []
    for name, data, _ in held_out[:2]:
        (tmp_path / name).write_bytes(data)
        pictures.append(tmp_path / name)
    page.goto(f"{server.base}/ui/models/{model_id}")
    form = page.get_by_test_id("predict-form")
    form.get_by_test_id("predict-images").set_input_files(pictures)
    form.get_by_test_id("predict-submit").click()
    result = page.get_by_test_id("predict-result")
    expect(result.get_by_test_id("prediction")).to_have_count(2)
    with api(server) as http:
        files = [("file", (p.name, p.read_bytes(), "image/png")) for p in pictures]
        expected = http.post(f"/v1/models/{model_id}/predict", files=files).json()
    titles = result.locator("h3").all_text_contents()
    assert titles == [
        f"{p.name}: {c}" for p, c in zip(pictures, expected["predictions"], strict=True)
    ]
    first = result.get_by_test_id("prediction").first.locator(".bar-row")
    shown = [float(b.get_attribute("data-probability") or "nan") for b in first.all()]
    np.testing.assert_allclose(
        shown, expected["probabilities"][0], rtol=1e-5
    )  # float32: one row and many round differently
    shot(page, "predict-pictures")
    assert console_errors == []


def test_the_dataset_page_shows_the_profile_and_missing_values(server: Server, page: Page) -> None:
    with warnings.catch_warnings():  # its module imports FastAPI's TestClient
        warnings.simplefilter("ignore")
        from tests.api.test_missing_values_api import penguins_csv
    content, _ = penguins_csv(120)
    with api(server) as http:
        dataset = http.post("/v1/datasets", files={"file": ("p.csv", content)}).json()
    assert dataset["missing"], dataset
    sign_in(page, server)
    page.goto(f"{server.base}/ui/datasets/{dataset['id']}")
    expect(page.get_by_test_id("missing-note")).to_be_visible()
    for column, count in dataset["missing"].items():
        row = page.locator(f'[data-testid="dataset-columns"] tr[data-column="{column}"]')
        expect(row.get_by_test_id("column-missing")).to_have_text(str(count))
    shot(page, "dataset-profile")
