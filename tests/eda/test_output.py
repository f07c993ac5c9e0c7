"""Figures and metrics files: written where asked, nothing written for an empty path."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iot_telemetry.eda.output import save_figure, table_to_dict, to_jsonable, write_json  # noqa: E402


def test_to_jsonable_converts_numpy_nan_and_time():
    value = {"a": np.int64(3), "b": np.float64(0.5), "c": math.nan, "d": pd.NA,
             "e": pd.Timestamp("2020-07-12T00:00:00Z"), "f": [np.bool_(True), None],
             1: "key"}
    assert to_jsonable(value) == {"a": 3, "b": 0.5, "c": None, "d": None,
                                  "e": "2020-07-12T00:00:00+00:00", "f": [True, None],
                                  "1": "key"}
    assert type(to_jsonable(np.int64(3))) is int


def test_table_to_dict_by_index():
    table = pd.DataFrame({"x": [1.0, np.nan]}, index=pd.Index(["a", "b"], name="device"))
    assert table_to_dict(table) == {"a": {"x": 1.0}, "b": {"x": None}}


def test_write_json_creates_parents(tmp_path):
    target = tmp_path / "metrics" / "eda.json"
    write_json({"n": np.int64(2), "x": math.nan}, str(target))
    assert json.loads(target.read_text()) == {"n": 2, "x": None}


def test_empty_paths_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig, _ = plt.subplots()
    save_figure(fig, "", "figure")
    write_json({"n": 1}, "")
    plt.close(fig)
    assert list(tmp_path.iterdir()) == []


def test_save_figure_writes_png(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, str(tmp_path / "figures"), "line")
    plt.close(fig)
    data = (tmp_path / "figures" / "line.png").read_bytes()
    assert data.startswith(b"\x89PNG")
