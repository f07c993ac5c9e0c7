"""Sustained QoS 1 ingest throughput against a bare paho subscriber, and alert latency.

    python benchmarks/bench_stream.py [--smoke] [--rounds N]

Throughput: one Mosquitto broker (generated config, persistence on) runs in
a tmp folder, and one publisher (the replay's windowed publisher, as fast as
flow control allows) in this process. The receiver runs in its own process.
First it is a minimal paho subscriber that only counts (MQTT 5, QoS 1,
automatic acknowledgements, `loop_forever`), then the ingester with the
default `stream` settings. Each rate is messages received over the time from
the first publish to the last receipt. The ingester acknowledges a message
only after an fsync of its journal, within commit_interval_ms (20 ms) of the
receipt. Its final Parquet flush is not timed. After each ingest run the
store is compared with the published keys, and lost and doubled readings
must both be 0. Full size: the real 24-hour capture four times over (ts
moved by whole days), 201,076 messages; without the capture, the synthetic
twin.

Alert latency: the small sample model served by the local endpoint
(`LocalEndpoint`, 1 worker), the live scorer in this process, and twin
readings with temp glitches published at a paced rate. Latency is the time
from publishing a reading to receiving the alert that opens its event.

Exit status 1 when any run lost or doubled a reading.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IOT_TELEMETRY_SHARED_DATA", ROOT.parent / "shared" / "data"))
CAPTURE = SHARED_DATA / "mqtt_dump_2020-07-13.json.zip"
DAY_S = 86_400.0
TARGET_RATIO = 0.6

log = logging.getLogger("bench_stream")


# Inputs

def throughput_messages(smoke: bool):
    """Return (messages, description) for the throughput runs."""
    from iot_telemetry.data.readers import read_inputs
    from iot_telemetry.stream.replay import messages_from_readings

    if CAPTURE.is_file():
        readings = read_inputs([CAPTURE]).readings
        source = f"the real capture ({len(readings):,} readings)"
    else:
        from iot_telemetry.data.sample import sample_readings

        readings = sample_readings(days=1.0, seed=0)
        source = f"one day of the synthetic twin ({len(readings):,} readings)"
    if smoke:
        readings = readings.sort_values("ts").head(3000)
        return messages_from_readings(readings), f"the first 3,000 readings of {source}"
    copies = []
    for day in range(4):
        copy = readings.copy()
        copy["ts"] = copy["ts"] + day * DAY_S
        copy["time"] = copy["time"] + pd.Timedelta(days=day)
        copies.append(copy)
    return messages_from_readings(pd.concat(copies, ignore_index=True)), (
        f"{source} four times over, ts moved by whole days")


def expected_keys(messages) -> pd.DataFrame:
    return pd.DataFrame({
        "device": [json.loads(message.payload)["device_id"] for message in messages],
        "ts": [message.ts for message in messages],
    }).drop_duplicates()


# Receivers (child processes)

def bare_subscriber(params, expected: int, ready, results) -> None:
    """Count QoS 1 messages with a minimal paho subscriber; report times."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from iot_telemetry.stream.client import connect_properties

    state = {"count": 0, "first": 0.0, "last": 0.0}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare",
                         protocol=mqtt.MQTTv5)

    def on_message(client, userdata, message):
        now = time.time()
        state["count"] += 1
        state["first"] = state["first"] or now
        state["last"] = now
        if state["count"] >= expected:
            client.disconnect()

    def watchdog():
        while True:
            time.sleep(1.0)
            if state["last"] and time.time() - state["last"] > 10:
                client.disconnect()  # messages stopped short of `expected`
                return

    client.on_connect = lambda c, u, f, rc, p: c.subscribe("telemetry/+", qos=1)
    client.on_subscribe = lambda *args: ready.set()
    client.on_message = on_message
    client.connect(params.host, params.port, clean_start=False,
                   properties=connect_properties(3600))
    threading.Thread(target=watchdog, daemon=True).start()
    client.loop_forever()
    results.put(state)


def ingest_receiver(params, out: str, ready, results) -> None:
    """Run the ingester until 5 s without messages; report its counters."""
    from iot_telemetry.stream.ingest import Ingester

    ingester = Ingester(params, Path(out))
    threading.Thread(target=lambda: ingester.subscribed.wait(60) and ready.set(),
                     daemon=True).start()
    counters = ingester.run(idle_exit_s=5.0)
    results.put({"count": counters.received, "stored": counters.stored,
                 "duplicates": counters.duplicates, "rejected": counters.rejected,
                 "first": counters.first_received, "last": counters.last_received})


def run_receiver(kind: str, params, messages, out: Path | None) -> dict:
    """Start a receiver process, publish every message, and return the measurements."""
    from iot_telemetry.stream.replay import WindowedPublisher

    context = multiprocessing.get_context("fork")
    ready, results = context.Event(), context.Queue()
    if kind == "bare":
        process = context.Process(target=bare_subscriber,
                                  args=(params, len(messages), ready, results))
    else:
        process = context.Process(target=ingest_receiver, args=(params, str(out), ready, results))
    process.start()
    if not ready.wait(60):
        process.kill()
        raise RuntimeError(f"{kind} receiver did not subscribe within 60 s")

    publisher = WindowedPublisher(params, client_id=f"bench-publisher-{kind}")
    publisher.start()
    started = time.time()
    for message in messages:
        publisher.publish(message.topic, message.payload)
    stats = publisher.drain()
    publish_seconds = time.time() - started
    publisher.close()

    result = results.get(timeout=600)
    process.join(60)
    result["seconds"] = result["last"] - started if result["count"] else float("nan")
    result["rate"] = result["count"] / result["seconds"] if result["count"] else 0.0
    result["published"] = stats.acknowledged
    result["publish_rate"] = stats.acknowledged / publish_seconds
    return result


def throughput(smoke: bool, rounds: int, workdir: Path) -> tuple[list[dict], str, int]:
    from iot_telemetry.stream.broker import BrokerConfig, MosquittoProcess, free_port
    from iot_telemetry.stream.check import compare_keys, stored_keys
    from iot_telemetry.stream.settings import StreamParams

    messages, source = throughput_messages(smoke)
    keys = expected_keys(messages)
    rows = []
    for round_number in range(1, rounds + 1):
        for kind in ("bare", "ingest"):
            broker_dir = workdir / f"broker-{kind}-{round_number}"
            config = BrokerConfig(directory=broker_dir, port=free_port())
            with MosquittoProcess(config):
                params = StreamParams(port=config.port, log_interval_s=30.0)
                out = workdir / f"out-{round_number}"
                result = run_receiver(kind, params, messages, out)
            result.update(kind=kind, round=round_number)
            if kind == "ingest":
                report = compare_keys(keys, stored_keys(out))
                result.update(lost=report.missing, doubled=report.doubled,
                              stored_unique=report.stored)
            else:
                result.update(lost=len(messages) - result["count"], doubled=None)
            rows.append(result)
            log.info("%s round %d: %.0f msg/s", kind, round_number, result["rate"])
    return rows, source, len(messages)


# Alert latency

def glitched_twin(minutes: float, every_s: float) -> tuple[pd.DataFrame, set]:
    """Twin readings (its own glitches removed) with temp 3.0 degC every `every_s` per device."""
    from iot_telemetry.data.sample import sample_with_truth

    readings, truth = sample_with_truth(days=max(minutes / 1440, 0.01), seed=0)
    glitches = truth.loc[truth["kind"] == "glitch", ["device", "ts"]]
    keys = pd.MultiIndex.from_frame(readings[["device", "ts"]])
    clean = readings.loc[~keys.isin(pd.MultiIndex.from_frame(glitches))]
    clean = clean.loc[clean["ts"] < clean["ts"].min() + minutes * 60].reset_index(drop=True)
    injected = set()
    offset = {name: index for index, name in enumerate(sorted(clean["device"].unique()))}
    for device, group in clean.groupby("device"):
        targets = np.arange(group["ts"].min() + 300 + 20 * offset[device],
                            group["ts"].max(), every_s)
        rows = group.index[np.searchsorted(group["ts"].to_numpy(), targets)
                           .clip(0, len(group) - 1)]
        clean.loc[rows, "temp"] = 3.0
        injected |= {(device, float(ts)) for ts in clean.loc[rows, "ts"]}
    return clean, injected


class AlertSubscriber:
    """Subscribe to alerts/# and keep each alert with its receive time."""

    def __init__(self, params):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.alerts: list[tuple[dict, float]] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-alerts",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("alerts/#", qos=1)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = lambda c, u, m: self.alerts.append(
            (json.loads(m.payload), time.time()))
        self.client.connect(params.host, params.port)
        self.client.loop_start()
        if not subscribed.wait(30):
            raise RuntimeError("alert subscriber did not subscribe within 30 s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def alert_latency(smoke: bool, workdir: Path) -> dict:
    from iot_telemetry.deploy.sample import sample_package
    from iot_telemetry.serving.server import LocalEndpoint
    from iot_telemetry.stream.broker import BrokerConfig, MosquittoProcess, free_port
    from iot_telemetry.stream.endpoint import HttpEndpoint
    from iot_telemetry.stream.replay import WindowedPublisher, messages_from_readings
    from iot_telemetry.stream.score import LiveScorer
    from iot_telemetry.stream.settings import StreamParams

    minutes, speed = (7.0, 60.0) if smoke else (40.0, 20.0)
    readings, injected = glitched_twin(minutes, every_s=120.0)
    messages = messages_from_readings(readings)
    package = sample_package(workdir / "model", days=0.05 if smoke else 0.1).archive.parent
    config = BrokerConfig(directory=workdir / "broker-latency", port=free_port())
    published: dict[tuple[str, float], float] = {}
    with MosquittoProcess(config), open(workdir / "server.log", "wb") as server_log:
        params = StreamParams(port=config.port, score_context_s=2000.0, log_interval_s=30.0)
        with LocalEndpoint(package, port=0, workers=1, log_file=server_log) as endpoint:
            scorer = LiveScorer(params, HttpEndpoint(endpoint.url, timeout_s=30))
            thread = threading.Thread(target=scorer.run, daemon=True)
            thread.start()
            scorer.subscribed.wait(30)
            collector = AlertSubscriber(params)
            publisher = WindowedPublisher(params, client_id="bench-latency")
            publisher.start()
            start, first_ts = time.monotonic(), messages[0].ts
            for message in messages:
                delay = start + (message.ts - first_ts) / speed - time.monotonic()
                if delay > 0:
                    publisher.wait(delay)
                published[(json.loads(message.payload)["device_id"], message.ts)] = time.time()
                publisher.publish(message.topic, message.payload)
            publisher.drain()
            publisher.close()
            deadline = time.monotonic() + 60
            while scorer.counters.scored < len(messages) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)
            scorer.stop()
            thread.join(30)
            collector.close()
    opens = [(alert, received) for alert, received in collector.alerts
             if alert["state"] == "open"]
    latencies = [(received - published[(alert["device_id"], alert["reading"]["ts"])]) * 1000
                 for alert, received in opens]
    opened = {(alert["device_id"], alert["opened_ts"]) for alert, _ in opens}
    return {
        "readings": len(messages), "speed": speed, "injected": len(injected),
        "alerts": len(latencies), "found": len(opened & injected),
        "extra": len(opened - injected), "p50": float(np.percentile(latencies, 50)),
        "p99": float(np.percentile(latencies, 99)), "max": float(max(latencies)),
        "batch_size": params.score_batch_size, "batch_wait_ms": params.score_batch_wait_ms,
    }


# Report

def report(rows, source, count, latency, smoke: bool, started_load: float) -> str:
    import paho.mqtt

    from iot_telemetry.stream.broker import find_mosquitto

    version = os.popen(f"{find_mosquitto()} -h").readline().strip()
    command = ".venv/bin/python benchmarks/bench_stream.py" + (" --smoke" if smoke else "")
    bare = [row["rate"] for row in rows if row["kind"] == "bare"]
    lines = [
        "# Stream benchmark", "",
        f"Command: `{command}`. Machine: {os.cpu_count()} CPUs, load average "
        f"{started_load:.2f} at start (other work shares the cores); {version}; paho-mqtt "
        f"{paho.mqtt.__version__}; Python {platform.python_version()}.", "",
        f"## Ingest throughput (QoS 1, MQTT 5, {count:,} messages)", "",
        f"Messages: {source}. Replay window 10,000; broker max_inflight_messages 1,000; "
        "ingest with the default `stream` settings (flush every 50,000 rows or 30 s).", "",
        "| round | receiver | received | lost | doubled | seconds | msg/s | vs bare |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        baseline = bare[row["round"] - 1]
        ratio = f"{100 * row['rate'] / baseline:.0f} %" if row["kind"] == "ingest" else "100 %"
        doubled = "-" if row["doubled"] is None else f"{row['doubled']}"
        lines.append(
            f"| {row['round']} | {'bare paho subscriber' if row['kind'] == 'bare' else 'ingest'}"
            f" | {row['count']:,} | {row['lost']} | {doubled} | {row['seconds']:.1f} "
            f"| {row['rate']:,.0f} | {ratio} |")
    ingest = [row for row in rows if row["kind"] == "ingest"]
    ratios = [row["rate"] / bare[row["round"] - 1] for row in ingest]
    lost = sum(row["lost"] for row in ingest)
    doubled = sum(row["doubled"] for row in ingest)
    verdict = "met" if min(ratios) >= TARGET_RATIO and lost == 0 and doubled == 0 else "missed"
    spread = (f"{100 * min(ratios):.0f} %" if len(ratios) == 1
              else f"{100 * min(ratios):.0f}-{100 * max(ratios):.0f} %")
    lines += [
        "", f"Ingest reached {spread} of the bare "
        f"rate with {lost} lost and {doubled} doubled readings; target (>= "
        f"{100 * TARGET_RATIO:.0f} %, 0 lost, 0 doubled) {verdict}.", "",
    ]
    if latency:
        lines += [
            "## Alert latency (publish to alert)", "",
            f"{latency['readings']:,} twin readings replayed at {latency['speed']:.0f}x with "
            f"{latency['injected']} temp glitches; sample model behind the local endpoint "
            f"(1 gunicorn worker); scorer batches of up to {latency['batch_size']} readings, "
            f"waiting at most {latency['batch_wait_ms']:.0f} ms to fill one.", "",
            "| open alerts | glitches alerted | other alerts | p50 ms | p99 ms | max ms |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {latency['alerts']} | {latency['found']} of {latency['injected']} | "
            f"{latency['extra']} | {latency['p50']:.0f} | {latency['p99']:.0f} | "
            f"{latency['max']:.0f} |", "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="3,000 messages, short latency run")
    parser.add_argument("--rounds", type=int, default=1, help="bare/ingest pairs (default 1)")
    parser.add_argument("--no-latency", action="store_true", help="skip the alert latency run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    started_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as folder:
        workdir = Path(folder)
        rows, source, count = throughput(args.smoke, args.rounds, workdir)
        latency = None if args.no_latency else alert_latency(args.smoke, workdir)
    print(report(rows, source, count, latency, args.smoke, started_load))
    bad = any(row["lost"] or row["doubled"] for row in rows if row["kind"] == "ingest")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
