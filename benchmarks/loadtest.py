"""Load test of the local endpoint, with the in-process handler and wsgiref as baselines.

    python benchmarks/loadtest.py [--smoke] [--package models/package] [--workers N]

Three ways to run the same archive's handler on the same request bodies:

- in-process: the four handler functions called in this process, one
  request at a time (the cost of the model and the parsing alone);
- gunicorn: the local endpoint (`iot-telemetry serve`), sync workers;
- wsgiref: the same WSGI app behind the standard library's single-process
  server, the simplest server there is (the baseline ratio).

The model is the one the pipeline serves: models/package, else
models/selected packaged here, else a model of the candidate the select
stage would choose (from reports/metrics/anomaly.json, or DEFAULT_SPEC when
the anomaly stage has not run) fitted on SAMPLE_DAYS of the synthetic twin.
The report names it.

A client on 127.0.0.1 sends single readings and batches of 100 and 1,000
readings at concurrency 1, 8 and 32: a blocking socket at concurrency 1,
where the overhead is measured, and a bounded asyncio client above it. Each cell stops after
MAX_REQUESTS requests or MAX_SECONDS (SERIAL_MAX_REQUESTS or SERIAL_MAX_SECONDS at
concurrency 1), whichever comes first. Client and
servers share this machine's cores, so each cell also records the 1-minute
load average. Besides latency percentiles, each server cell reports the
server overhead per request: client latency minus the time in the handler
functions that the app reports in its Server-Timing header, which does not
depend on how long the model takes. The same client against a server that
returns a canned response of the same size gives the floor that the client
and the loopback network alone account for. Prints Markdown to stdout, writes it to
reports/loadtest.md and writes reports/figures/loadtest/latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "reports" / "figures" / "loadtest" / "latency.png"
REPORT = ROOT / "reports" / "loadtest.md"
ANOMALY_METRICS = ROOT / "reports" / "metrics" / "anomaly.json"
SELECTED_DIR = ROOT / "models" / "selected"
# The select stage's choice on the default 8-day twin, as its model card
# recorded here on 4 December 2026. Used when reports/metrics/anomaly.json
# is missing.
DEFAULT_SPEC = "mq2+stuck+robust_jump+drift"
# The anomaly stage trains on half of the 8-day twin, and the drift part
# learns a daily profile only from two days or more.
SAMPLE_DAYS = 4.0

SIZES = (1, 100, 1000)
CONCURRENCY = (1, 8, 32)
MAX_REQUESTS = 400
MAX_SECONDS = 10.0
# The concurrency-1 cells, where the overhead p99 is read, send more
# requests, so that p99 rests on the slowest 10 rather than 4.
SERIAL_MAX_REQUESTS = 1000
SERIAL_MAX_SECONDS = 40.0
SMOKE_SIZES = (1, 100)
SMOKE_CONCURRENCY = (1, 8)
SMOKE_MAX_REQUESTS = 8
SMOKE_MAX_SECONDS = 1.0
# Distinct bodies per batch size, sent in turn.
BODIES_PER_SIZE = 3
READINGS_SEED = 202
READINGS_DAYS = 0.25
# The server-overhead targets: p99 over the in-process handler at
# concurrency 1, throughput at concurrency 8 against the in-process rate,
# and batched readings per second.
TARGET_OVERHEAD_MS = 2.0
TARGET_RATE_FRACTION = 0.5
TARGET_BATCH_READINGS_S = 20_000


def anomaly_params():
    """Return the anomaly section of params.yaml, validated."""
    from iot_telemetry.anomaly.params import load_anomaly_params
    from iot_telemetry.pipeline.params import load_params

    return load_anomaly_params(load_params(ROOT / "params.yaml").get("anomaly"))


def selection_spec() -> tuple[str, str]:
    """Return the candidate the select stage would choose and where that comes from."""
    if not ANOMALY_METRICS.is_file():
        return DEFAULT_SPEC, "the select stage's choice on the default twin"
    from iot_telemetry.anomaly.select import rank_candidates

    anomaly = anomaly_params()
    metrics = json.loads(ANOMALY_METRICS.read_text())
    ranking = rank_candidates(
        metrics.get("candidates", {}),
        anomaly.selection_metric,
        anomaly.max_false_alarms_per_day,
    )
    return ranking[0]["candidate"], f"the ranking in {ANOMALY_METRICS.relative_to(ROOT)}"


@dataclass(frozen=True)
class Budget:
    """Requests and seconds a cell may spend, whichever runs out first."""

    requests: int
    seconds: float
    serial_requests: int
    serial_seconds: float

    def at(self, concurrency: int) -> tuple[int, float]:
        """Return the request and time limits at this concurrency."""
        if concurrency == 1:
            return self.serial_requests, self.serial_seconds
        return self.requests, self.seconds


def serving_package(package: Path, scratch: Path) -> tuple[Path, str]:
    """Return the package folder to serve and a sentence naming its model.

    See the module docstring for the order in which models are tried.
    """
    from iot_telemetry.deploy.package import build_package
    from iot_telemetry.deploy.sample import sample_package

    if (package / "model.tar.gz").is_file():
        where = f"{package}"
    elif (SELECTED_DIR / "model_card.json").is_file():
        package = build_package(SELECTED_DIR, scratch / "package").archive.parent
        where = f"{SELECTED_DIR.relative_to(ROOT)}, packaged for this run"
    else:
        spec, source = selection_spec()
        anomaly = anomaly_params()
        options = {
            "settings": anomaly.detectors,
            "feature_config": anomaly.features.config(),
            **anomaly.model_options(),
        }
        package = sample_package(
            scratch / "sample",
            days=SAMPLE_DAYS,
            seed=anomaly.seed,
            spec=spec,
            model_options=options,
        ).archive.parent
        return package, (
            f"`{spec}` ({source}) with the settings of params.yaml, fitted on"
            f" {SAMPLE_DAYS:g} days of the synthetic twin because the pipeline has"
            " not written models/selected/"
        )
    manifest = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    summary = manifest.get("model", {})
    source = (summary.get("training") or {}).get("source", "unknown data")
    return package, f"`{summary.get('name', 'unknown')}` from {where} (trained on {source})"


def request_bodies(sizes: tuple[int, ...]) -> dict[int, list[bytes]]:
    """Return JSON bodies of unseen twin readings for each batch size."""
    from iot_telemetry.data.sample import sample_readings
    from iot_telemetry.deploy.smoke import build_requests

    readings = sample_readings(days=READINGS_DAYS, seed=READINGS_SEED)
    bodies = {}
    for size in sizes:
        requests = build_requests(readings, BODIES_PER_SIZE, size, 0, csv_last=False)
        if size == 1:
            bodies[size] = [
                json.dumps(json.loads(r.body)["instances"][0]).encode()
                for r in requests
            ]
        else:
            bodies[size] = [r.body for r in requests]
    return bodies


def summarize(latencies: list[float], elapsed_s: float, size: int, errors: int) -> dict:
    values = np.asarray(latencies) * 1000.0
    count = len(latencies)
    return {
        "requests": count,
        "errors": errors,
        "p50_ms": float(np.percentile(values, 50)) if count else float("nan"),
        "p95_ms": float(np.percentile(values, 95)) if count else float("nan"),
        "p99_ms": float(np.percentile(values, 99)) if count else float("nan"),
        "requests_s": count / elapsed_s if elapsed_s else float("nan"),
        "readings_s": count * size / elapsed_s if elapsed_s else float("nan"),
    }


def run_in_process(
    loaded, bodies: list[bytes], size: int, max_requests: int, max_seconds: float
) -> dict:
    """Call the handler functions back to back in this process."""
    loaded.invoke(bodies[0], "application/json")
    latencies, errors = [], 0
    started = time.perf_counter()
    deadline = started + max_seconds
    while len(latencies) < max_requests and time.perf_counter() < deadline:
        body = bodies[len(latencies) % len(bodies)]
        begin = time.perf_counter()
        response = loaded.invoke(body, "application/json")
        latencies.append(time.perf_counter() - begin)
        errors += response.status != 200
    result = summarize(latencies, time.perf_counter() - started, size, errors)
    result["load"] = os.getloadavg()[0]
    return result


def http_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


SERVER_TIMING = re.compile(
    rb"\r\nServer-Timing: handler;dur=([0-9.]+), app;dur=([0-9.]+)", re.IGNORECASE
)


async def post(port: int, payload: bytes) -> tuple[int, float | None]:
    """Send one request on a new connection.

    Returns:
        The HTTP status (0 for a broken response) and the seconds spent in
        the handler functions, from the Server-Timing header (None when
        absent).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    if not response.startswith(b"HTTP/1."):
        return 0, None
    head = response.split(b"\r\n\r\n", 1)[0]
    timing = SERVER_TIMING.search(head)
    return int(response[9:12]), float(timing.group(1)) / 1000.0 if timing else None


def post_blocking(port: int, payload: bytes) -> tuple[int, float | None]:
    """Send one request on a new connection with a plain blocking socket.

    Same result as `post`. Against the same endpoint, the asyncio client's
    median latency was 0.7-1.9 ms higher (1 to 1,000 readings, measured
    once), all of it spent in the client's event loop. So at concurrency 1
    this client is used, and the overhead measured is mostly the server's.
    """
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(payload)
        chunks = []
        while chunk := connection.recv(1 << 20):
            chunks.append(chunk)
    response = b"".join(chunks)
    if not response.startswith(b"HTTP/1."):
        return 0, None
    timing = SERVER_TIMING.search(response.split(b"\r\n\r\n", 1)[0])
    return int(response[9:12]), float(timing.group(1)) / 1000.0 if timing else None


def measure_cell(
    port: int,
    bodies: list[bytes],
    size: int,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> dict:
    """Run one cell: the blocking client at concurrency 1, else the asyncio client."""
    with client_gc_paused():
        if concurrency > 1:
            return asyncio.run(
                run_cell(port, bodies, size, concurrency, max_requests, max_seconds)
            )
        return run_serial_cell(port, bodies, size, max_requests, max_seconds)


def run_serial_cell(
    port: int, bodies: list[bytes], size: int, max_requests: int, max_seconds: float
) -> dict:
    """Send the requests one after another with `post_blocking`."""
    payloads = [http_request(port, body) for body in bodies]
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + max_seconds
    while len(latencies) < max_requests and time.perf_counter() < deadline:
        payload = payloads[len(latencies) % len(payloads)]
        begin = time.perf_counter()
        try:
            status, handler_s = post_blocking(port, payload)
        except OSError:
            status, handler_s = 0, None
        latency = time.perf_counter() - begin
        latencies.append(latency)
        if handler_s is not None:
            overheads.append(latency - handler_s)
        errors += status != 200
    result = summarize(latencies, time.perf_counter() - started, size, errors)
    result["overhead_p50_ms"] = _percentile(overheads, 50)
    result["overhead_p99_ms"] = _percentile(overheads, 99)
    result["load"] = os.getloadavg()[0]
    return result


@contextlib.contextmanager
def client_gc_paused():
    """Pause this process's garbage collector while a cell is timed.

    As `timeit` does: a collection in the client (this process contains the
    in-process model and pandas) would land in a request's latency and be
    counted as server overhead. The servers keep their collectors on.
    """
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


async def run_cell(
    port: int,
    bodies: list[bytes],
    size: int,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> dict:
    """Keep `concurrency` requests in flight until the request or time budget is spent."""
    payloads = [http_request(port, body) for body in bodies]
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    issued = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    async def client() -> None:
        nonlocal issued, errors
        while issued < max_requests and time.perf_counter() < deadline:
            payload = payloads[issued % len(payloads)]
            issued += 1
            begin = time.perf_counter()
            try:
                status, handler_s = await post(port, payload)
            except OSError:
                status, handler_s = 0, None
            latency = time.perf_counter() - begin
            latencies.append(latency)
            if handler_s is not None:
                overheads.append(latency - handler_s)
            errors += status != 200

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result = summarize(latencies, time.perf_counter() - started, size, errors)
    result["overhead_p50_ms"] = _percentile(overheads, 50)
    result["overhead_p99_ms"] = _percentile(overheads, 99)
    result["load"] = os.getloadavg()[0]
    return result


def canned_response(body: bytes) -> bytes:
    """Return an HTTP response carrying `body` and a zero handler time."""
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Server-Timing: handler;dur=0.000, app;dur=0.000\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def serve_canned(listener: socket.socket, response: bytes) -> None:
    """Send `response` to every request, one connection at a time.

    Reads the head and Content-Length bytes of body, so the client sends and
    waits exactly as it does against the endpoint.
    """
    while True:
        connection, _ = listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"Content-Length: (\d+)", head, re.IGNORECASE)
            remaining = int(length.group(1)) - len(body) if length else 0
            while remaining > 0:
                chunk = connection.recv(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
            connection.sendall(response)


def measure_floor(
    bodies: list[bytes], size: int, limits: tuple[int, float], response_body: bytes
) -> dict:
    """Run the client at concurrency 1 against serve_canned in a child process.

    The canned response carries `response_body`, the endpoint's response to
    the first body, so the client reads as many bytes as from the endpoint.
    """
    import multiprocessing

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(
        target=serve_canned,
        args=(listener, canned_response(response_body)),
        daemon=True,
    )
    server.start()
    listener.close()
    try:
        return measure_cell(port, bodies, size, 1, *limits)
    finally:
        server.terminate()
        server.join()


def run_all(
    package: Path,
    workers: int,
    bodies: dict[int, list[bytes]],
    concurrency: tuple[int, ...],
    budget: Budget,
    log_dir: Path,
) -> tuple[dict, dict, dict]:
    """Measure every cell, size by size: in-process, the floor, then each server.

    Both servers run for the whole test (idle ones use no CPU), so the
    measurements of one size are taken minutes apart at most, under the same
    load from other processes on the machine.

    Returns:
        in-process cells by size, the canned-response floor by size, and
        server cells by server and (size, concurrency).
    """
    from contextlib import ExitStack

    from iot_telemetry.serving.server import LoadedArchive, LocalEndpoint

    in_process: dict[int, dict] = {}
    floors: dict[int, dict] = {}
    servers: dict[str, dict] = {"gunicorn": {}, "wsgiref": {}}
    with ExitStack() as stack:
        loaded = stack.enter_context(LoadedArchive(package))
        ports = {}
        for kind in servers:
            log_file = stack.enter_context(open(log_dir / f"{kind}.log", "wb"))
            endpoint = stack.enter_context(
                LocalEndpoint(
                    package, port=0, workers=workers, log_file=log_file, server=kind
                )
            )
            ports[kind] = endpoint.port
        for size, size_bodies in bodies.items():
            in_process[size] = run_in_process(loaded, size_bodies, size, *budget.at(1))
            floors[size] = measure_floor(
                size_bodies,
                size,
                budget.at(1),
                loaded.invoke(size_bodies[0], "application/json").body,
            )
            for kind, port in ports.items():
                # One warm-up request per worker, untimed.
                asyncio.run(run_cell(port, size_bodies, size, workers, workers, 60.0))
                for level in concurrency:
                    servers[kind][(size, level)] = measure_cell(
                        port, size_bodies, size, level, *budget.at(level)
                    )
    return in_process, floors, servers


def plot(in_process: dict, servers: dict[str, dict], sizes, concurrency) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(sizes), figsize=(4.2 * len(sizes), 3.6), sharey=True
    )
    for axis, size in zip(np.atleast_1d(axes), sizes):
        for kind, marker in (("gunicorn", "o"), ("wsgiref", "s")):
            cells = [servers[kind][(size, level)] for level in concurrency]
            axis.plot(
                concurrency,
                [c["p50_ms"] for c in cells],
                marker=marker,
                label=f"{kind} p50",
            )
            axis.plot(
                concurrency,
                [c["p99_ms"] for c in cells],
                marker=marker,
                linestyle="--",
                label=f"{kind} p99",
            )
        axis.axhline(
            in_process[size]["p50_ms"],
            color="grey",
            linewidth=1,
            label="in-process p50",
        )
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xticks(concurrency, [str(level) for level in concurrency])
        axis.set_title(f"{size} reading{'s' if size > 1 else ''} per request")
        axis.set_xlabel("concurrent requests")
    np.atleast_1d(axes)[0].set_ylabel("latency (ms)")
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)


def report(
    args,
    model: str,
    workers: int,
    results: tuple[dict, dict, dict],
    sizes,
    concurrency,
    budget: Budget,
    load_before: float,
) -> str:
    """Return the Markdown report: the table, the targets and the server overhead."""
    in_process, floors, servers = results
    lines = [
        "# Load test of the local endpoint",
        "",
        f"Command: `python benchmarks/loadtest.py{' --smoke' if args.smoke else ''}`. "
        f"Model: {model}. Gunicorn with {workers} sync workers; client, servers and "
        f"in-process baseline on the same {os.cpu_count()} CPUs ({platform.machine()}), "
        f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run "
        "(other processes share these CPUs); "
        f"Python {platform.python_version()}. Each cell: at most {budget.requests} requests "
        f"or {budget.seconds:.0f} s, at concurrency 1 (and in-process) at most "
        f"{budget.serial_requests} or {budget.serial_seconds:.0f} s; the client's garbage "
        "collector is paused while a cell is timed. The load column is the 1-minute load average when the "
        "cell ended.",
        "",
        "| server | readings/request | concurrency | requests | p50 ms | p95 ms | p99 ms "
        "| req/s | readings/s | errors | vs wsgiref | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        cell = in_process[size]
        lines.append(
            f"| in-process | {size} | 1 | {cell['requests']} | {cell['p50_ms']:.1f} | "
            f"{cell['p95_ms']:.1f} | {cell['p99_ms']:.1f} | {cell['requests_s']:.1f} | "
            f"{cell['readings_s']:,.0f} | {cell['errors']} | | {cell['load']:.1f} |"
        )
        for level in concurrency:
            for kind in ("gunicorn", "wsgiref"):
                cell = servers[kind][(size, level)]
                ratio = (
                    cell["readings_s"] / servers["wsgiref"][(size, level)]["readings_s"]
                )
                lines.append(
                    f"| {kind} | {size} | {level} | {cell['requests']} | {cell['p50_ms']:.1f} | "
                    f"{cell['p95_ms']:.1f} | {cell['p99_ms']:.1f} | {cell['requests_s']:.1f} | "
                    f"{cell['readings_s']:,.0f} | {cell['errors']} | {ratio:.2f}x | "
                    f"{cell['load']:.1f} |"
                )
    lines += [
        "",
        "Server overhead at concurrency 1: client latency minus the handler time the "
        "server reports for the same request (Server-Timing `handler`), in ms. The "
        "floor is the same blocking client against a server that reads the request and returns "
        "a canned response of the same size, without parsing anything.",
        "",
        "| readings/request | gunicorn p50 | gunicorn p99 | wsgiref p50 | wsgiref p99 "
        "| floor p50 | floor p99 | gunicorn p99 minus in-process p99 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        gunicorn, wsgiref = servers["gunicorn"][(size, 1)], servers["wsgiref"][(size, 1)]
        lines.append(
            f"| {size} | {gunicorn['overhead_p50_ms']:.2f} | {gunicorn['overhead_p99_ms']:.2f} "
            f"| {wsgiref['overhead_p50_ms']:.2f} | {wsgiref['overhead_p99_ms']:.2f} "
            f"| {floors[size]['overhead_p50_ms']:.2f} | {floors[size]['overhead_p99_ms']:.2f} "
            f"| {gunicorn['p99_ms'] - in_process[size]['p99_ms']:+.1f} |"
        )
    lines += ["", "Against the targets, measured in this run:", ""]
    worst = max(servers["gunicorn"][(size, 1)]["overhead_p99_ms"] for size in sizes)
    lines.append(
        f"- server overhead p99 at concurrency 1: at most {worst:.2f} ms over the sizes "
        f"(target <= {TARGET_OVERHEAD_MS:.0f} ms)."
    )
    if 8 in concurrency:
        rates = [
            servers["gunicorn"][(size, 8)]["requests_s"] / in_process[size]["requests_s"]
            for size in sizes
        ]
        lines.append(
            f"- throughput at concurrency 8: {min(rates):.0%} to {max(rates):.0%} of the "
            f"in-process rate (target >= {TARGET_RATE_FRACTION:.0%})."
        )
    batched = max(
        servers["gunicorn"][(size, level)]["readings_s"]
        for size in sizes
        if size > 1
        for level in concurrency
    )
    lines += [
        f"- best batched throughput: {batched:,.0f} readings/s "
        f"(target >= {TARGET_BATCH_READINGS_S:,}).",
        "",
        f"Figure: {FIGURE.relative_to(ROOT)}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="few requests, sizes 1 and 100, concurrency 1 and 8",
    )
    parser.add_argument(
        "--package",
        type=Path,
        default=ROOT / "models" / "package",
        help="package folder (default: models/package; without it models/selected,"
        " else a sample of the candidate the select stage would choose)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gunicorn workers (default: one per CPU, at least 2)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from iot_telemetry.serving.server import default_workers

    sizes = SMOKE_SIZES if args.smoke else SIZES
    concurrency = SMOKE_CONCURRENCY if args.smoke else CONCURRENCY
    budget = (
        Budget(SMOKE_MAX_REQUESTS, SMOKE_MAX_SECONDS, SMOKE_MAX_REQUESTS, SMOKE_MAX_SECONDS)
        if args.smoke
        else Budget(MAX_REQUESTS, MAX_SECONDS, SERIAL_MAX_REQUESTS, SERIAL_MAX_SECONDS)
    )
    workers = args.workers or default_workers()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        package, model = serving_package(args.package, Path(scratch))
        bodies = request_bodies(sizes)
        results = run_all(package, workers, bodies, concurrency, budget, Path(scratch))
    plot(results[0], results[2], sizes, concurrency)
    text = report(
        args, model, workers, results, sizes, concurrency, budget, load_before
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
