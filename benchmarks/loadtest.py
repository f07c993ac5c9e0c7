"""Load test of the local endpoint, with the in-process handler and wsgiref as baselines.

    python benchmarks/loadtest.py [--smoke] [--package models/package] [--workers N]

Three ways to run the same archive's handler on the same request bodies:

- in-process: the four handler functions called in this process, one
  request at a time (the cost of the model and the parsing alone);
- gunicorn: the local endpoint (`iot-telemetry serve`), sync workers;
- wsgiref: the same WSGI app behind the standard library's single-process
  server, the simplest server there is (the baseline ratio).

A bounded asyncio client on 127.0.0.1 sends single readings and batches of
100 and 1,000 readings at concurrency 1, 8 and 32. Each cell stops after
MAX_REQUESTS requests or MAX_SECONDS, whichever comes first. Client and
servers share this machine's cores. Besides latency percentiles, each server
cell reports the time spent outside the app per request (client latency
minus the app's Server-Timing header), which does not depend on how long
the model takes. Prints Markdown to stdout and writes
reports/figures/loadtest/latency.png. Without models/package (a fresh clone)
it packages a small model fitted on the synthetic twin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "reports" / "figures" / "loadtest" / "latency.png"

SIZES = (1, 100, 1000)
CONCURRENCY = (1, 8, 32)
MAX_REQUESTS = 400
MAX_SECONDS = 10.0
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
    return summarize(latencies, time.perf_counter() - started, size, errors)


def http_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


SERVER_TIMING = re.compile(rb"\r\nServer-Timing: app;dur=([0-9.]+)", re.IGNORECASE)


async def post(port: int, payload: bytes) -> tuple[int, float | None]:
    """Send one request on a new connection.

    Returns:
        The HTTP status (0 for a broken response) and the app's own time in
        seconds from the Server-Timing header (None when absent).
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
                status, app_s = await post(port, payload)
            except OSError:
                status, app_s = 0, None
            latency = time.perf_counter() - begin
            latencies.append(latency)
            if app_s is not None:
                overheads.append(latency - app_s)
            errors += status != 200

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result = summarize(latencies, time.perf_counter() - started, size, errors)
    values = np.asarray(overheads) * 1000.0
    result["outside_app_p50_ms"] = (
        float(np.percentile(values, 50)) if len(values) else float("nan")
    )
    result["outside_app_p99_ms"] = (
        float(np.percentile(values, 99)) if len(values) else float("nan")
    )
    return result


def run_all(
    package: Path,
    workers: int,
    bodies: dict[int, list[bytes]],
    concurrency: tuple[int, ...],
    budget: tuple[int, float],
    log_dir: Path,
) -> tuple[dict, dict]:
    """Measure every cell, size by size: in-process first, then each server.

    Both servers run for the whole test (idle ones use no CPU), so the three
    measurements of one size are taken minutes apart at most, under the same
    load from other processes on the machine.
    """
    from contextlib import ExitStack

    from iot_telemetry.serving.server import LoadedArchive, LocalEndpoint

    in_process: dict[int, dict] = {}
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
            in_process[size] = run_in_process(loaded, size_bodies, size, *budget)
            for kind, port in ports.items():
                # One warm-up request per worker, untimed.
                asyncio.run(run_cell(port, size_bodies, size, workers, workers, 60.0))
                for level in concurrency:
                    servers[kind][(size, level)] = asyncio.run(
                        run_cell(port, size_bodies, size, level, *budget)
                    )
    return in_process, servers


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
    package: Path,
    workers: int,
    in_process: dict,
    servers: dict,
    sizes,
    concurrency,
    budget: tuple[int, float],
    load_before: float,
) -> str:
    lines = [
        "# Load test of the local endpoint",
        "",
        f"Command: `python benchmarks/loadtest.py{' --smoke' if args.smoke else ''}`. "
        f"Archive {package}; gunicorn with {workers} sync workers; client, servers and "
        f"in-process baseline on the same {os.cpu_count()} CPUs ({platform.machine()}), "
        f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run "
        "(other processes share these CPUs); "
        f"Python {platform.python_version()}. Each cell: at most {budget[0]} requests or "
        f"{budget[1]:.0f} s.",
        "",
        "| server | readings/request | concurrency | requests | p50 ms | p95 ms | p99 ms | req/s | readings/s | errors | vs wsgiref |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        cell = in_process[size]
        lines.append(
            f"| in-process | {size} | 1 | {cell['requests']} | {cell['p50_ms']:.1f} | "
            f"{cell['p95_ms']:.1f} | {cell['p99_ms']:.1f} | {cell['requests_s']:.1f} | "
            f"{cell['readings_s']:,.0f} | {cell['errors']} | |"
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
                    f"{cell['readings_s']:,.0f} | {cell['errors']} | {ratio:.2f}x |"
                )
    lines += ["", "Server cost over the in-process handler, measured in this run:", ""]
    for size in sizes:
        cell = servers["gunicorn"][(size, 1)]
        overhead = cell["p99_ms"] - in_process[size]["p99_ms"]
        lines.append(
            f"- {size} reading(s): p99 at concurrency 1 is {overhead:+.1f} ms over the in-process "
            f"handler (target <= {TARGET_OVERHEAD_MS:.0f} ms). Per request, the time outside the "
            f"app (client latency minus Server-Timing) is p50 {cell['outside_app_p50_ms']:.2f} ms, "
            f"p99 {cell['outside_app_p99_ms']:.2f} ms."
        )
        if 8 in concurrency:
            rate = (
                servers["gunicorn"][(size, 8)]["requests_s"]
                / in_process[size]["requests_s"]
            )
            lines.append(
                f"- {size} reading(s): throughput at concurrency 8 is {rate:.0%} of the in-process "
                f"rate (target >= {TARGET_RATE_FRACTION:.0%})."
            )
    batched = max(
        servers["gunicorn"][(size, level)]["readings_s"]
        for size in sizes
        if size > 1
        for level in concurrency
    )
    lines += [
        f"- Best batched throughput: {batched:,.0f} readings/s (target >= {TARGET_BATCH_READINGS_S:,}).",
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
        help="package folder (default: models/package, else a sample model)",
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
        (SMOKE_MAX_REQUESTS, SMOKE_MAX_SECONDS)
        if args.smoke
        else (MAX_REQUESTS, MAX_SECONDS)
    )
    workers = args.workers or default_workers()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch:
        scratch = Path(scratch)
        package = args.package
        if not (package / "model.tar.gz").is_file():
            from iot_telemetry.deploy.sample import sample_package

            package = sample_package(scratch / "sample").archive.parent
        bodies = request_bodies(sizes)
        in_process, servers = run_all(
            package, workers, bodies, concurrency, budget, scratch
        )
    plot(in_process, servers, sizes, concurrency)
    print(
        report(
            args,
            package,
            workers,
            in_process,
            servers,
            sizes,
            concurrency,
            budget,
            load_before,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
