"""Score request bodies with an archive, in an interpreter without the project.

Run by test_parity.py with the container-like virtualenv's python in isolated
mode (-I), so only the archive's code/ folder provides ``iot_telemetry``:

    python -I container_parity.py ARCHIVE REQUESTS_JSON OUTPUT_JSON

REQUESTS_JSON is a list of {"body": text, "content_type": str}; OUTPUT_JSON
gets the package versions, where iot_telemetry was imported from, and the
handler's (status, body) for each request.
"""

import importlib.util
import json
import sys
import tarfile
import tempfile
from pathlib import Path


def main(archive, requests_path, output_path):
    model_dir = Path(tempfile.mkdtemp(prefix="parity-model-"))
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    spec = importlib.util.spec_from_file_location(
        "inference", model_dir / "code" / "inference.py"
    )
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    model = inference.model_fn(str(model_dir))

    responses = []
    for request in json.loads(Path(requests_path).read_text()):
        data = inference.input_fn(request["body"], request["content_type"])
        prediction = inference.predict_fn(data, model)
        response = inference.output_fn(prediction, "application/json")
        responses.append({"status": response.status, "body": response.body.decode()})

    import iot_telemetry
    import numpy
    import pandas
    import scipy
    import sklearn

    result = {
        "python": sys.version.split()[0],
        "versions": {
            "numpy": numpy.__version__,
            "pandas": pandas.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "iot_telemetry": str(Path(iot_telemetry.__file__).resolve().parent),
        "model_dir": str(model_dir.resolve()),
        "responses": responses,
    }
    Path(output_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:4])
