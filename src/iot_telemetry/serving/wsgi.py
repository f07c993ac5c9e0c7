"""WSGI application with the SageMaker container's HTTP contract.

Routes: ``GET /ping`` (200 once the model is loaded) and ``POST /invocations``
(the handler functions of code/inference.py). A body over MAX_BODY_BYTES gets
413 before it is parsed, and other errors in the request get 4xx from the
handler. Only a failure inside the model gives 500, logged with its
traceback. Every request is logged as one line with method, path, status,
sizes and latency.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterable

from iot_telemetry.serving.handler import error_response
from iot_telemetry.serving.payload import MAX_BODY_BYTES, RequestError

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}
_JSON = "application/json"
# Oversized bodies up to this size are read and discarded before the 413.
MAX_DRAIN_BYTES = 4 * MAX_BODY_BYTES
_DRAIN_CHUNK = 1 << 16
# Maximum time for a whole request body to arrive. A sync worker serves one
# connection at a time, so a client that stops sending, or sends a byte now
# and then, would hold it until gunicorn's worker timeout.
BODY_TIMEOUT_ENV = "IOT_TELEMETRY_BODY_TIMEOUT_S"
DEFAULT_BODY_TIMEOUT_S = 10.0


class EndpointApp:
    """Serve one loaded model through a handler module's four functions.

    Args:
        handler: a module with model_fn, input_fn, predict_fn and output_fn
            (code/inference.py of an unpacked archive).
        model: what handler.model_fn returned.
    """

    def __init__(self, handler: ModuleType, model: Any) -> None:
        self.handler = handler
        self.model = model
        self.info = dict(getattr(model, "info", {}) or {})
        self.body_timeout_s = float(
            os.environ.get(BODY_TIMEOUT_ENV) or DEFAULT_BODY_TIMEOUT_S
        )

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        readings = 0
        handler_s = 0.0
        if path == "/ping":
            status, content_type, body = self._ping(method)
        elif path == "/invocations":
            status, content_type, body, readings, handler_s = self._invoke(
                environ, method
            )
        else:
            status, content_type, body = _error(
                404, f"no route {path!r}; use GET /ping or POST /invocations"
            )
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            # W3C Server-Timing: the time in the four handler functions and
            # in the whole app, so a client can tell the model's, the
            # server's and the network's share of its latency.
            (
                "Server-Timing",
                f"handler;dur={handler_s * 1000.0:.3f}, app;dur={elapsed_ms:.3f}",
            ),
        ]
        if status == 405:
            headers.append(("Allow", "GET" if path == "/ping" else "POST"))
        start_response(f"{status} {_REASONS.get(status, '')}".strip(), headers)
        log.info(
            "%s %s %d readings=%d in=%sB out=%dB %.2f ms",
            method,
            path,
            status,
            readings,
            environ.get("CONTENT_LENGTH") or 0,
            len(body),
            elapsed_ms,
        )
        return [body]

    def _ping(self, method: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return _error(405, "use GET /ping")
        return 200, _JSON, json.dumps({"status": "ok", "model": self.info}).encode()

    def _invoke(
        self, environ: dict, method: str
    ) -> tuple[int, str, bytes, int, float]:
        """Run the handler functions on the request.

        Returns:
            status, content type, body, readings parsed, and seconds spent
            in the handler functions.
        """
        if method != "POST":
            return (*_error(405, "use POST /invocations"), 0, 0.0)
        body = self._read_body_in_time(environ)
        if isinstance(body, RequestError):
            return (*_error(body.status, str(body)), 0, 0.0)
        content_type = environ.get("CONTENT_TYPE") or _JSON
        accept = environ.get("HTTP_ACCEPT")
        started = time.perf_counter()
        try:
            data = self.handler.input_fn(body, content_type)
            readings = 0 if isinstance(data, RequestError) else len(data)
            prediction = self.handler.predict_fn(data, self.model)
            response = self.handler.output_fn(prediction, accept)
        except Exception:
            log.exception("invocation failed (content type %s)", content_type)
            return (
                *_error(500, "the model failed on this request; see the server log"),
                0,
                time.perf_counter() - started,
            )
        handler_s = time.perf_counter() - started
        return response.status, response.content_type, response.body, readings, handler_s


    def _read_body_in_time(self, environ: dict) -> bytes | RequestError:
        """Read the body within `body_timeout_s`, or return 408 for a slow client.

        Only gunicorn exposes the client socket (``gunicorn.socket``), so
        other servers read without a time limit. The socket timeout bounds
        each wait for bytes. An alarm bounds the whole body, because a client
        that sends one byte at a time never lets a socket timeout expire.
        """
        connection = environ.get("gunicorn.socket")
        if connection is None:
            return _read_body(environ)
        connection.settimeout(self.body_timeout_s)
        try:
            return _with_deadline(lambda: _read_body(environ), self.body_timeout_s)
        except (TimeoutError, _BodyDeadline):
            log.warning(
                "request body timed out: not received in full within %.1f s (Content-Length %s)",
                self.body_timeout_s,
                environ.get("CONTENT_LENGTH") or "none",
            )
            return RequestError(
                f"request body not received in full within {self.body_timeout_s:g} s;"
                " send the whole body that Content-Length announces",
                status=408,
            )
        finally:
            connection.settimeout(None)


class _BodyDeadline(Exception):
    """The whole-body time limit passed while the body was being read."""


def _with_deadline(read: Callable[[], Any], seconds: float) -> Any:
    """Call `read`, raising _BodyDeadline if it runs longer than `seconds`.

    SIGALRM interrupts a blocking recv, and the handler's exception ends it
    (PEP 475 retries only when the handler returns). Signal handlers can be
    set only in the main thread, so other threads, such as a threaded test
    server's, read without the limit.
    """
    if threading.current_thread() is not threading.main_thread():
        return read()
    reading = True

    def on_alarm(signum, frame):
        if reading:
            raise _BodyDeadline

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return read()
    finally:
        reading = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _read_body(environ: dict) -> bytes | RequestError:
    """Read the request body, or return a 413 error without reading it."""
    length_header = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length_header:
        try:
            length = int(length_header)
        except ValueError:
            return RequestError(f"invalid Content-Length {length_header!r}")
        if length > MAX_BODY_BYTES:
            _drain(stream, min(length, MAX_DRAIN_BYTES))
            return RequestError(
                f"request body of {length} bytes exceeds the limit of"
                f" {MAX_BODY_BYTES} bytes; split it into smaller requests",
                status=413,
            )
        return _read_exactly(stream, length) if length > 0 else b""
    # Chunked transfer encoding: read one byte past the limit to detect excess.
    body = stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        _drain(stream, MAX_DRAIN_BYTES)
        return RequestError(
            f"request body exceeds the limit of {MAX_BODY_BYTES} bytes;"
            " split it into smaller requests",
            status=413,
        )
    return body


def _read_exactly(stream, length: int) -> bytes:
    """Read a body of known length from wsgi.input.

    gunicorn's `Body.read` pulls the body through its reader 1 KiB at a
    time and copies the read-ahead buffer on every pull, which took 0.6 ms
    for a 230 KB body here (gunicorn 26). Its `LengthReader` returns the same
    bytes from socket-sized chunks in 0.1 ms, so that reader is used when
    the body object is gunicorn's and has buffered nothing yet. Other
    servers get the plain `read`.
    """
    try:
        from gunicorn.http.body import Body, LengthReader
    except ImportError:
        return stream.read(length)
    if (
        isinstance(stream, Body)
        and isinstance(stream.reader, LengthReader)
        and stream.buf.tell() == 0
    ):
        return stream.reader.read(length)
    return stream.read(length)


def _drain(stream, limit: int) -> None:
    """Read and discard up to `limit` bytes of an oversized body.

    A client still sending when the server closes the connection gets a reset
    instead of the 413; draining first lets it read the response.
    """
    remaining = limit
    while remaining > 0:
        try:
            chunk = stream.read(min(_DRAIN_CHUNK, remaining))
        except TimeoutError:
            # The client stopped sending, so send the 413 without the rest.
            return
        if not chunk:
            return
        remaining -= len(chunk)


def _error(status: int, message: str) -> tuple[int, str, bytes]:
    response = error_response(RequestError(message, status=status))
    return response.status, response.content_type, response.body
