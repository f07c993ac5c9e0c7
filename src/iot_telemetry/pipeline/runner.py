"""Execute a stage's notebook with papermill and render it to HTML.

Papermill exits 0 when a notebook has no `parameters` cell or when it is
given a parameter name the notebook does not declare, and keeps the default
silently. This runner checks both before executing and fails instead.
"""

from __future__ import annotations

import ast
import logging
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

from iot_telemetry.errors import InputError

log = logging.getLogger(__name__)

KERNEL_NAME = "python3"


def stage_notebooks(root: Path) -> list[Path]:
    """Return the stage notebooks notebooks/NN-STAGE.ipynb, in order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def notebook_for(stage: str, root: Path) -> Path:
    """Return notebooks/NN-STAGE.ipynb for a stage name.

    Raises:
        InputError: no notebook or more than one matches.
    """
    matches = sorted((root / "notebooks").glob(f"[0-9][0-9]-{stage}.ipynb"))
    if len(matches) != 1:
        raise InputError(
            f"expected one notebook notebooks/NN-{stage}.ipynb, found {len(matches)}"
        )
    return matches[0]


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Return the names and default values of a notebook's parameters cell.

    Raises:
        InputError: there is no cell tagged `parameters`, or it contains
            anything but assignments of literals to plain names.
    """
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise InputError(
            f"{notebook}: expected one cell tagged 'parameters', found {len(cells)}"
        )
    tree = ast.parse(cells[0].source)
    defaults = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise InputError(
                f"{notebook}: the parameters cell may hold only `name = literal` lines, "
                f"found {ast.unparse(node)!r}"
            )
        try:
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError as error:
            raise InputError(
                f"{notebook}: parameter {node.targets[0].id} is not a literal"
            ) from error
    return defaults


def check_parameters(notebook: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Check names and types of `values` against the notebook's defaults.

    An int is accepted where the default is a float, and any value where the
    default is None. Returns `values` with ints widened to float where needed.

    Raises:
        InputError: an unknown name or a value of the wrong type.
    """
    defaults = declared_parameters(notebook)
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise InputError(
            f"{notebook.name}: unknown parameter(s) {', '.join(unknown)}; the notebook "
            f"declares {', '.join(sorted(defaults))}"
        )
    checked = {}
    for name, value in values.items():
        default = defaults[name]
        if isinstance(value, tuple):
            value = list(value)
        if default is None or value is None:
            checked[name] = value
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            checked[name] = float(value)
        elif type(value) is not type(default):
            raise InputError(
                f"{notebook.name}: parameter {name} must be {type(default).__name__}, "
                f"got {value!r} ({type(value).__name__})"
            )
        else:
            checked[name] = value
    return checked


def execute(notebook: Path, output: Path, parameters: dict[str, Any], root: Path) -> None:
    """Run `notebook` with `parameters` into `output`, from the project root."""
    import papermill

    parameters = check_parameters(notebook, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    log.info("executing %s with %s", notebook.name, parameters)
    started = time.perf_counter()
    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        kernel_name=KERNEL_NAME,
        cwd=str(root),
        progress_bar=sys.stderr.isatty(),
        log_output=False,
        request_save_on_cell_execute=False,
    )
    log.info("executed %s in %.1f s", notebook.name, time.perf_counter() - started)


def render_html(executed: Path, html: Path) -> None:
    """Write a stakeholder HTML page of an executed notebook, code cells hidden."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body, encoding="utf-8")
