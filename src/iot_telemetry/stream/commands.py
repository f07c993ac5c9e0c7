"""`iot-telemetry stream broker|replay|ingest|score|check` commands.

Every command reads the `stream` section of params.yaml; the connection
flags below override single keys. Heavy imports (paho, pandas) happen inside
the handlers so `iot-telemetry --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging

from iot_telemetry.options import port_number

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the `stream` command group to the top-level parser."""
    stream = subparsers.add_parser(
        "stream", help="MQTT broker, replay, lossless ingest and live scoring",
        description="Run the MQTT side of the project. Connection settings come from "
        "the `stream` section of params.yaml; flags override them.",
    )
    commands = stream.add_subparsers(dest="stream_command", metavar="STREAM_COMMAND")
    commands.required = True
    _add_broker(commands)
    _add_replay(commands)
    _add_ingest(commands)
    _add_score(commands)
    _add_check(commands)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("broker connection (override params.yaml `stream`)")
    group.add_argument("--params", help="params file (default: params.yaml at the project "
                       "root; built-in defaults when there is none)")
    group.add_argument("--host", help="broker host name or address")
    group.add_argument("--port", type=port_number, help="broker TCP port")
    group.add_argument("--username", help="broker user name (default: anonymous)")
    group.add_argument("--password-env", help="environment variable that contains the "
                       "broker password")
    group.add_argument("--ca-certs", help="CA certificate file; setting it turns TLS on")
    group.add_argument("--certfile", help="client certificate file (TLS client auth)")
    group.add_argument("--keyfile", help="client private key file (TLS client auth)")
    group.add_argument("--tls-insecure", action="store_true", default=None,
                       help="skip the server host name check (testing only)")


def _params(args: argparse.Namespace, **extra):
    from iot_telemetry.stream.settings import load_params, with_overrides

    params = load_params(args.params)
    return with_overrides(
        params, host=args.host, port=args.port, username=args.username,
        password_env=args.password_env, ca_certs=args.ca_certs, certfile=args.certfile,
        keyfile=args.keyfile, tls_insecure=args.tls_insecure, **extra,
    )


# broker

def _add_broker(commands) -> None:
    parser = commands.add_parser(
        "broker", help="start Mosquitto with a generated config",
        description="Generate mosquitto.conf in the broker folder and run Mosquitto in "
        "the foreground until SIGTERM or Ctrl-C. The local config listens on --host/--port "
        "only (loopback by default) with anonymous access; --production adds a TLS "
        "listener with a password file and an ACL file (see docs/streaming.md).",
    )
    _connection_flags(parser)
    parser.add_argument("--dir", help="folder for the config, persistence database and "
                        "log (default: params `broker_dir`)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the generated config and exit without starting")
    production = parser.add_argument_group("production config")
    production.add_argument("--production", action="store_true",
                            help="generate the TLS + password file + ACL config")
    production.add_argument("--tls-port", type=port_number, default=8883,
                            help="TLS listener port (default: 8883)")
    production.add_argument("--tls-bind", default="0.0.0.0",
                            help="TLS listener bind address (default: 0.0.0.0)")
    production.add_argument("--cafile", help="CA certificate the broker presents")
    production.add_argument("--server-certfile", help="broker certificate file")
    production.add_argument("--server-keyfile", help="broker private key file")
    production.add_argument("--password-file", help="file made with mosquitto_passwd")
    production.add_argument("--acl-file", help="ACL file; written from --device when "
                            "missing")
    production.add_argument("--device", action="append", default=[], metavar="DEVICE_ID",
                            help="device allowed to publish to its telemetry topic "
                            "(repeat; used to write the ACL file)")
    parser.set_defaults(handler=run_broker)


def run_broker(args: argparse.Namespace) -> int:
    """Start Mosquitto in the foreground; return its exit status."""
    import signal
    from pathlib import Path

    from iot_telemetry.errors import InputError
    from iot_telemetry.paths import resolve
    from iot_telemetry.stream.broker import (
        ACL_NAME,
        BrokerConfig,
        BrokerError,
        MosquittoProcess,
        render_acl,
        render_config,
    )

    params = _params(args)
    directory = Path(args.dir) if args.dir else _resolve_or_cwd(params.broker_dir, resolve)
    config = BrokerConfig(
        directory=directory.resolve(), host=params.host, port=params.port,
        max_packet_size_bytes=params.max_packet_size_bytes,
        max_inflight_messages=params.max_inflight_messages,
        max_queued_messages=params.max_queued_messages,
        autosave_interval_s=params.autosave_interval_s,
        log_to_file=not args.print_config,
    )
    if args.production:
        acl = Path(args.acl_file) if args.acl_file else directory / ACL_NAME
        if not acl.is_file():
            if not args.device:
                raise InputError(f"ACL file {acl} not found; pass --acl-file or at least "
                                 "one --device to generate it")
            acl.parent.mkdir(parents=True, exist_ok=True)
            acl.write_text(render_acl(args.device, params.telemetry_topic,
                                      params.alert_topic))
        config.tls_port, config.tls_bind = args.tls_port, args.tls_bind
        config.cafile = args.cafile or ""
        config.certfile = args.server_certfile or ""
        config.keyfile = args.server_keyfile or ""
        config.password_file = args.password_file or ""
        config.acl_file = str(acl)
    try:
        text = render_config(config, production=args.production)
    except ValueError as error:
        raise InputError(f"{error}: pass --cafile, --server-certfile, --server-keyfile "
                         "and --password-file") from error
    if args.print_config:
        print(text, end="")
        return 0

    broker = None
    stop_requested = []

    def on_sigterm(*_):
        # Pass SIGTERM on: Mosquitto saves its database and exits, ending wait().
        stop_requested.append(True)
        if broker is not None and broker.running:
            broker.process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        broker = MosquittoProcess(config, production=args.production)
        broker.start()
    except BrokerError as error:
        if stop_requested:
            # SIGTERM during start-up stopped the broker before it was ready.
            log.info("mosquitto stopped by SIGTERM during start-up")
            return 0
        raise InputError(str(error)) from error
    try:
        status = broker.stop() if stop_requested else broker.wait()
    except KeyboardInterrupt:
        status = broker.stop()
    if status != 0:
        log.error("mosquitto exited with status %d; log:\n%s", status, broker.log_tail())
    return 0 if status == 0 else 1


def _resolve_or_cwd(path: str, resolve):
    from pathlib import Path

    try:
        return resolve(path)
    except FileNotFoundError:
        return Path(path).resolve()


# replay

def _add_replay(commands) -> None:
    parser = commands.add_parser(
        "replay", help="publish recorded readings as device messages",
        description="Read INPUTs with the batch reader (Kaggle CSV, MQTT capture .json/.zip, "
        "Parquet, a stream capture folder) and publish each reading at QoS 1 to "
        "<telemetry_topic>/<device_id>, keeping the recorded gaps divided by --speed.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="file or folder")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0,
                      help="replay speed factor: 60 sends one recorded minute per second "
                      "(default: 1, real time)")
    pace.add_argument("--max-rate", action="store_true",
                      help="publish as fast as flow control allows")
    parser.add_argument("--window", type=int, help="unacknowledged QoS 1 messages allowed "
                        "(default: params `replay_window`; below 65,535)")
    parser.add_argument("--limit", type=int, help="publish only the first N messages")
    parser.add_argument("--client-id", help="MQTT client id (default: params "
                        "`replay_client_id`)")
    _connection_flags(parser)
    parser.set_defaults(handler=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    """Publish the inputs; exit 1 if the broker rejected any message."""
    from pathlib import Path

    from iot_telemetry.errors import InputError

    if args.speed is not None and args.speed <= 0:
        raise InputError(f"--speed must be positive, got {args.speed}")
    missing = [path for path in args.inputs if not Path(path).exists()]
    if missing:
        raise InputError(f"input not found: {', '.join(missing)}")

    from iot_telemetry.stream.replay import (
        ReplayError,
        WindowedPublisher,
        load_messages,
        replay,
    )
    params = _params(args, replay_window=args.window, replay_client_id=args.client_id)
    messages = load_messages(args.inputs, params.telemetry_topic)
    if args.limit is not None:
        messages = messages[: args.limit]
    publisher = WindowedPublisher(params)
    try:
        publisher.start()
        stats = replay(messages, publisher, speed=None if args.max_rate else args.speed)
    except ReplayError as error:
        raise InputError(str(error)) from error
    finally:
        publisher.close()
    print(f"published {stats.acknowledged} messages in {stats.seconds:.1f} s "
          f"({stats.rate:.0f} msg/s); {stats.rejected} rejected by the broker")
    return 1 if stats.rejected else 0


# ingest

def _add_ingest(commands) -> None:
    parser = commands.add_parser(
        "ingest", help="store telemetry in Parquet, each reading once",
        description="Subscribe with a persistent session at QoS 1 and write readings to "
        "--out as Parquet partitioned by date and device (a valid `data.input`). Rejected "
        "messages go to --out/deadletter/. Stops on SIGTERM or Ctrl-C after a final flush.",
    )
    parser.add_argument("--out", help="output folder (default: params `ingest_out`)")
    parser.add_argument("--client-id", help="MQTT client id of the persistent session "
                        "(default: params `ingest_client_id`)")
    parser.add_argument("--flush-rows", type=int, help="flush after this many messages")
    parser.add_argument("--flush-interval-s", type=float,
                        help="flush at least this often, in seconds")
    parser.add_argument("--idle-exit-s", type=float,
                        help="stop after this many seconds without a message")
    _connection_flags(parser)
    parser.set_defaults(handler=run_ingest)


def run_ingest(args: argparse.Namespace) -> int:
    """Run the ingester until a signal; exit 2 when the broker rejects the login."""
    from iot_telemetry.paths import resolve
    from iot_telemetry.stream.ingest import Ingester

    params = _params(args, ingest_client_id=args.client_id, flush_rows=args.flush_rows,
                     flush_interval_s=args.flush_interval_s)
    out = _resolve_or_cwd(args.out or params.ingest_out, resolve)
    ingester = Ingester(params, out)
    ingester.install_signal_handlers()
    counters = ingester.run(idle_exit_s=args.idle_exit_s)
    print(f"received {counters.received}, stored {counters.stored}, duplicates "
          f"{counters.duplicates}, rejected {counters.rejected} (dead letters in "
          f"{out / 'deadletter'})")
    return 2 if ingester.connect_error else 0


# score

def _add_score(commands) -> None:
    parser = commands.add_parser(
        "score", help="score live telemetry with the endpoint and publish alerts",
        description="Subscribe to the telemetry topics, send readings in small batches to "
        "the endpoint (local HTTP, or SageMaker through boto3 when --endpoint-name is set) "
        "and publish one alert per anomaly event opening and closing to "
        "<alert_topic>/<device_id>.",
    )
    parser.add_argument("--endpoint-url", help="local endpoint base URL (default: params "
                        "`endpoint_url`)")
    parser.add_argument("--endpoint-name", help="SageMaker endpoint name; uses boto3 "
                        "sagemaker-runtime instead of --endpoint-url")
    parser.add_argument("--region", help="AWS region of the SageMaker endpoint")
    parser.add_argument("--batch-size", type=int, help="readings per endpoint request")
    parser.add_argument("--gap-s", type=float, help="flagged readings of a device less "
                        "than this many seconds apart form one event")
    parser.add_argument("--client-id", help="MQTT client id (default: params "
                        "`score_client_id`)")
    parser.add_argument("--idle-exit-s", type=float,
                        help="stop after this many seconds without a message")
    parser.add_argument("--alias", action="append", default=None, metavar="OLD=NEW",
                        help="map a device id before scoring (repeatable); default: params "
                        "`devices.aliases`, the mapping ingest applies")
    parser.add_argument("--no-aliases", action="store_true",
                        help="send device ids to the endpoint as they are")
    _connection_flags(parser)
    parser.set_defaults(handler=run_score)


def run_score(args: argparse.Namespace) -> int:
    """Run the live scorer until a signal."""
    from iot_telemetry.stream.score import LiveScorer, endpoint_from_params

    params = _params(args, endpoint_url=args.endpoint_url, endpoint_name=args.endpoint_name,
                     region=args.region, score_batch_size=args.batch_size,
                     alert_gap_s=args.gap_s, score_client_id=args.client_id)
    scorer = LiveScorer(params, endpoint_from_params(params), aliases=_score_aliases(args))
    scorer.install_signal_handlers()
    counters = scorer.run(idle_exit_s=args.idle_exit_s)
    print(f"scored {counters.scored} readings, flagged {counters.flagged}, published "
          f"{counters.alerts} alerts ({counters.events} events)")
    return 0


def _score_aliases(args: argparse.Namespace) -> dict[str, str]:
    """Return the device id mapping for the scorer: flags, else params.yaml's."""
    from pathlib import Path

    from iot_telemetry.data.devices import parse_alias_options
    from iot_telemetry.errors import InputError
    from iot_telemetry.paths import project_root
    from iot_telemetry.pipeline.params import load_params

    if args.no_aliases:
        return {}
    if args.alias:
        try:
            return parse_alias_options(args.alias)
        except ValueError as error:
            raise InputError(str(error)) from error
    path = Path(args.params) if args.params else project_root() / "params.yaml"
    return dict(load_params(path).get("devices", {}).get("aliases") or {})


# check

def _add_check(commands) -> None:
    parser = commands.add_parser(
        "check", help="compare an ingest folder with the inputs that were replayed",
        description="Report readings of the INPUTs missing from --out, readings in --out "
        "not in the INPUTs, and keys stored twice. Exit 1 when any are found.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT")
    parser.add_argument("--out", required=True, help="ingest output folder")
    parser.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Print the loss report; exit 1 on any missing, extra or doubled reading."""
    from iot_telemetry.stream.check import compare_capture

    report = compare_capture(args.inputs, args.out)
    print(report.to_markdown())
    return 0 if report.ok else 1
