"""SageMaker scikit-learn container entry points for the selected anomaly model.

The package stage copies this file to ``code/inference.py`` in model.tar.gz,
next to a copy of the ``iot_telemetry`` modules it needs (``code/iot_telemetry``).
The container runs it with SAGEMAKER_PROGRAM=inference.py and
SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code; the local server
(`iot-telemetry serve`) and the tests load it the same way.

Request and response formats: ``iot_telemetry/serving/schemas/*.v1.json``.
"""

from __future__ import annotations

import importlib.util
import os
import sys

_CODE_DIR = os.path.dirname(os.path.abspath(__file__))

# The container imports this module by name from code/. A loader that imports
# it by file path (the local server, the parity test) may leave code/ off
# sys.path, so add it unless an installed iot_telemetry is found first.
if importlib.util.find_spec("iot_telemetry") is None:
    sys.path.insert(0, _CODE_DIR)

from iot_telemetry.serving import handler  # noqa: E402

try:
    # Present only on the SageMaker image: its Flask response class carries
    # the HTTP status, which a (body, content_type) tuple cannot.
    from sagemaker_containers.beta.framework import worker as _container_worker
except ImportError:
    _container_worker = None


def model_fn(model_dir):
    """Load the selected model from the unpacked archive (/opt/ml/model)."""
    return handler.model_fn(model_dir)


def input_fn(request_body, request_content_type):
    """Parse a JSON or CSV body into readings, or a request error to report."""
    return handler.input_fn(request_body, request_content_type)


def predict_fn(input_data, model):
    """Score the readings not marked as context."""
    return handler.predict_fn(input_data, model)


def output_fn(prediction, accept):
    """Encode the scores (or the request error) for the Accept type."""
    response = handler.output_fn(prediction, accept)
    if _container_worker is None:
        return response
    # NOTE: this branch runs only on the SageMaker image and is not exercised
    # by the tests here, which have no sagemaker-containers package.
    return _container_worker.Response(
        response=response.body, status=response.status, mimetype=response.content_type
    )
