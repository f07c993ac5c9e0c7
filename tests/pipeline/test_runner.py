"""Notebook runner: parameters are checked before papermill runs anything."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from iot_telemetry.errors import InputError
from iot_telemetry.pipeline import runner, stages
from iot_telemetry.pipeline.params import load_params
from iot_telemetry.pipeline.stages import notebook_parameters


def make_notebook(path: Path, parameters: str | None, body: str = "x = 1") -> Path:
    nb = nbformat.v4.new_notebook()
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_code_cell(body))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def test_declared_parameters_literals(tmp_path):
    nb = make_notebook(tmp_path / "01-x.ipynb", 'path = ""\nflag = False\nrate = 0.5\nn = 3')
    assert runner.declared_parameters(nb) == {"path": "", "flag": False, "rate": 0.5, "n": 3}


def test_missing_parameters_tag_fails(tmp_path):
    nb = make_notebook(tmp_path / "01-x.ipynb", None)
    with pytest.raises(InputError, match="tagged 'parameters'"):
        runner.declared_parameters(nb)


def test_impure_parameters_cell_fails(tmp_path):
    nb = make_notebook(tmp_path / "01-x.ipynb", "import os\npath = os.getcwd()")
    with pytest.raises(InputError, match="only `name = literal`"):
        runner.declared_parameters(nb)


def test_unknown_parameter_fails(tmp_path):
    nb = make_notebook(tmp_path / "01-x.ipynb", "days = 1.0")
    with pytest.raises(InputError, match="unknown parameter.*dayz"):
        runner.check_parameters(nb, {"dayz": 2.0})


def test_string_false_rejected_for_bool(tmp_path):
    nb = make_notebook(tmp_path / "01-x.ipynb", "enabled = True")
    with pytest.raises(InputError, match="must be bool"):
        runner.check_parameters(nb, {"enabled": "false"})


def test_int_widened_to_float(tmp_path):
    nb = make_notebook(tmp_path / "01-x.ipynb", "days = 1.0")
    checked = runner.check_parameters(nb, {"days": 2})
    assert checked == {"days": 2.0}
    assert isinstance(checked["days"], float)


def test_execute_injects_typed_values(tmp_path):
    nb = make_notebook(tmp_path / "01-x.ipynb", "enabled = True\ndays = 1.0",
                       body="assert enabled is False\nassert days == 2.5\nresult = 'ok'")
    out = tmp_path / "out" / "01-x.ipynb"
    runner.execute(nb, out, {"enabled": False, "days": 2.5}, tmp_path)
    executed = nbformat.read(out, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "enabled = False" in injected[0].source


def test_render_html_hides_code(tmp_path):
    nb = make_notebook(tmp_path / "01-x.ipynb", "n = 1", body="secret_name = 41\nprint(secret_name + 1)")
    out = tmp_path / "01-x.out.ipynb"
    runner.execute(nb, out, {}, tmp_path)
    html = tmp_path / "01-x.html"
    runner.render_html(out, html)
    text = html.read_text()
    assert "42" in text
    assert "secret_name" not in text


def test_params_schema_coerces_and_rejects(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("synthesize:\n  days: '1e-1'\n")
    assert load_params(path)["synthesize"]["days"] == 0.1
    path.write_text("synthesize:\n  dayz: 1\n")
    with pytest.raises(InputError, match="dayz"):
        load_params(path)
    path.write_text("synthesize:\n  days: -1\n")
    with pytest.raises(InputError, match="days"):
        load_params(path)


def test_notebook_parameters_fill_from_base(project_root):
    params = load_params(project_root / "params.yaml")
    declared = {"readings_path": "", "seed": 1, "figures_dir": "", "metrics_path": "",
                "data_input": ""}
    values = notebook_parameters("eda", params, declared)
    assert values["seed"] == params["base"]["seed"]
    assert values["figures_dir"] == "reports/figures/eda"
    assert values["metrics_path"] == "reports/metrics/eda.json"
    assert values["data_input"] == "synthetic"
    assert values["readings_path"] == "data/interim/readings.parquet"


def test_project_notebooks_accept_their_sections(project_root):
    """Each notebook stage's params.yaml section names only declared parameters."""
    params = load_params(project_root / "params.yaml")
    notebooks = sorted((project_root / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    assert notebooks, "no notebooks found"
    for notebook in notebooks:
        stage = notebook.stem.split("-", 1)[1]
        declared = runner.declared_parameters(notebook)
        values = notebook_parameters(stage, params, declared)
        runner.check_parameters(notebook, values)


def test_params_invalid_yaml_clear_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("ingest:\n  out: [data\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_params(path)


def test_params_unknown_timezone_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("ingest:\n  source_timezone: Mars/Olympus\n")
    with pytest.raises(InputError, match="Mars/Olympus") as caught:
        load_params(path)
    assert "IANA" in str(caught.value)


def test_ingest_stage_rejects_input_without_readings(tmp_path, project_root):
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "ts,device,co,humidity,light,lpg,motion,smoke,temp\n"
        "1594512094.3859746,b8:27:eb:bf:9d:51,0.0049,51.0,maybe,0.0076,false,0.0204,22.7\n"
    )
    params = load_params(project_root / "params.yaml")
    params["data"]["input"] = str(bad)
    params["ingest"]["out"] = str(tmp_path / "interim")

    with pytest.raises(InputError, match="no valid readings: 1 rows read, 1 quarantined"):
        stages.run_ingest(params, tmp_path)

    # The quarantine the error points to is written before the stage fails.
    quarantine = pd.read_parquet(tmp_path / "interim" / "quarantine.parquet")
    assert len(quarantine) == 1
    assert "light" in quarantine["reason"].iloc[0]
    summary = json.loads((tmp_path / "reports" / "metrics" / "ingest.json").read_text())
    assert summary["kept"] == 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("base:\n  timezone: Europe/Berlin\n", "every stage stores and models in UTC"),
        ("base:\n  resample_rule: banana\n", "not a fixed pandas frequency"),
        ("base:\n  resample_rule: 1M\n", "not a fixed pandas frequency"),
        ("characterize:\n  day_start_hour_utc: 30\n", "day_start_hour_utc"),
        ("characterize:\n  day_start_hour_utc: 18\n  day_end_hour_utc: 6\n", "must be before"),
        ("characterize:\n  cv_foldz: 5\n", "cv_foldz"),
        ("synthesize:\n  days: 1e9\n", "days"),
    ],
)
def test_params_sections_reject_nonsense(tmp_path, text, fragment):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=fragment):
        load_params(path)


def test_params_accept_fixed_resample_rule(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("base:\n  resample_rule: 1h\n")
    assert load_params(path)["base"]["resample_rule"] == "1h"


def test_run_unknown_stage_lists_stages():
    with pytest.raises(InputError, match="unknown stage 'bogus'") as caught:
        stages.run_stage("bogus")
    message = str(caught.value)
    assert "synthesize" in message
    assert "anomaly" in message


def test_run_own_command_stage_named():
    with pytest.raises(InputError, match="`iot-telemetry deploy`"):
        stages.run_stage("deploy")


def test_anomaly_section_checked_before_notebook(tmp_path, project_root):
    params = load_params(project_root / "params.yaml")
    params["anomaly"] = {**params["anomaly"], "detectors": {"drift": {"min_treshold": 1.0}}}
    # The check fails before papermill starts, so no executed notebook appears.
    with pytest.raises(InputError, match="min_treshold"):
        stages.run_notebook_stage("anomaly", params, tmp_path)
    assert not (tmp_path / "reports").exists()
