"""Bad, odd and hostile input to `iot-telemetry ingest`.

The contract under test: every rejected row or message is in quarantine.parquet
with a reason, and ingest.json's `read` equals both the rows in the input and
kept + duplicates + quarantined. Input the user can fix gives a one-line error
and exit status 2, never a traceback. ts stays bit-equal to the input.

The command runs in-process through `iot_telemetry.cli.main`, so an uncaught
exception fails the test with its traceback. Tests that need a real process
(the memory limit of the zip bomb) run the console script.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iot_telemetry.cli import main
from iot_telemetry.data.kaggle_csv import java_double_string

HEADER = '"ts","device","co","humidity","light","lpg","motion","smoke","temp"'
PLAIN_HEADER = "ts,device,co,humidity,light,lpg,motion,smoke,temp"
DEVICE = "b8:27:eb:bf:9d:51"
CLI = Path(sys.executable).with_name("iot-telemetry")


def row(ts="1.5945120943859746E9", device=DEVICE, co="0.0049", hum="51.0",
        light="false", lpg="0.0076", motion="false", smoke="0.0204", temp="22.7",
        quote='"'):
    fields = [ts, device, co, hum, light, lpg, motion, smoke, temp]
    return ",".join(f"{quote}{value}{quote}" for value in fields)


def message(ts=1594598424.5023336, device_id="0e:9c:00:4c:1c:51", alias="iot-device-01",
            **data):
    sensors = {"co": 0.0117, "humidity": 73.8, "light": False, "lpg": 0.0142,
               "motion": False, "smoke": 0.0397, "temp": 18.9}
    sensors.update(data)
    return {"data": sensors, "device_id": device_id, "ts": ts, "device": alias}


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def write_zip(tmp_path: Path, name: str, members: dict[str, str | bytes]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, content in members.items():
            if member.endswith("/"):
                archive.writestr(zipfile.ZipInfo(member), b"")
            else:
                archive.writestr(member, content)
    return path


class Run:
    """Outcome of one `ingest` call: exit status, error lines and the outputs."""

    def __init__(self, status, errors, out: Path):
        self.status = status
        self.errors = errors
        self.out = out
        self.summary = None
        if status == 0:
            self.summary = json.loads((out / "ingest.json").read_text())

    @functools.cached_property
    def quarantine(self) -> pd.DataFrame:
        return pd.read_parquet(self.out / "quarantine.parquet")

    @functools.cached_property
    def readings(self) -> pd.DataFrame:
        return pd.read_parquet(self.out / "readings.parquet")

    @property
    def reasons(self) -> list[str]:
        return sorted(self.quarantine["reason"].tolist())


@pytest.fixture
def ingest(tmp_path, caplog, capsys):
    """Run `iot-telemetry ingest ARGS... --out DIR` in-process and load its outputs."""
    runs = iter(range(1000))

    def run(*args) -> Run:
        out = tmp_path / f"out{next(runs)}"
        caplog.clear()
        with caplog.at_level(logging.INFO):
            status = main(["ingest", *map(str, args), "--out", str(out)])
        capsys.readouterr()
        errors = [record.getMessage() for record in caplog.records
                  if record.levelno >= logging.ERROR]
        return Run(status, errors, out)

    return run


def assert_accounted(run: Run, rows_in_input: int) -> None:
    """Check that every input row is counted once and the tables match the counts."""
    summary = run.summary
    assert summary["read"] == rows_in_input
    assert summary["read"] == (
        summary["kept"] + summary["duplicates"] + summary["quarantined"]
    )
    assert len(run.readings) == summary["kept"]
    assert len(run.quarantine) == summary["quarantined"]
    assert bool((run.quarantine["reason"].str.len() > 0).all())


def assert_user_error(run: Run, *words: str) -> None:
    """Check for exit status 2 with one single-line error naming `words`."""
    assert run.status == 2
    assert len(run.errors) == 1
    assert "\n" not in run.errors[0]
    for word in words:
        assert word in run.errors[0].lower()


# Encodings and line ends


def test_bom_header_read(tmp_path, ingest):
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbf" + f"{HEADER}\n{row()}\n".encode())
    run = ingest(path)
    assert_accounted(run, 1)
    assert run.summary["kept"] == 1
    assert run.readings["ts"].iloc[0] == 1594512094.3859746


@pytest.mark.parametrize("ends", [["\r\n", "\r\n"], ["\r\n", "\n"], ["\r", "\r"]],
                         ids=["crlf", "mixed", "cr-only"])
def test_line_ends_read(tmp_path, ingest, ends):
    text = HEADER + ends[0] + row() + ends[1] + row(ts="1.6E9") + ends[0]
    run = ingest(write(tmp_path, "ends.csv", text))
    assert_accounted(run, 2)
    assert run.readings["ts"].tolist() == [1594512094.3859746, 1.6e9]


def test_cr_only_csv_in_zip_read(tmp_path, ingest):
    text = HEADER + "\r" + row() + "\r" + row(ts="1.6E9") + "\r"
    run = ingest(write_zip(tmp_path, "cr.zip", {"a.csv": text}))
    assert run.status == 0
    assert_accounted(run, 2)


def test_latin1_device_not_kept_mangled(tmp_path, ingest):
    """A Latin-1 byte in a device id must not become U+FFFD in a kept reading."""
    device = "b8:27:\xe9b"
    text = f"{HEADER}\n{row(device=device)}\n{row(ts='1.6E9')}\n"
    run = ingest(write(tmp_path, "latin1.csv", text.encode("latin-1")))
    assert_accounted(run, 2)
    devices = run.readings["device"].tolist()
    assert not any("\ufffd" in name for name in devices)
    assert device in devices or run.summary["quarantined"] == 1


def test_latin1_device_in_zip_not_mangled(tmp_path, ingest):
    text = f"{HEADER}\n{row(device='b8:27:' + chr(0xE9))}\n"
    run = ingest(write_zip(tmp_path, "latin1.zip", {"a.csv": text.encode("latin-1")}))
    assert_accounted(run, 1)
    assert not any("\ufffd" in name for name in run.readings["device"])


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_json_non_utf8_clear_error(tmp_path, ingest, encoding):
    """Latin-1 is an error; UTF-16 with its byte-order mark is read faithfully."""
    text = json.dumps([message(alias="iot-\xe9")], ensure_ascii=False)
    run = ingest(write(tmp_path, "dump.json", text.encode(encoding)))
    if encoding == "utf-16":
        assert_accounted(run, 1)
        assert run.readings["alias"].tolist() == ["iot-\xe9"]
    else:
        assert_user_error(run, "dump.json")


# Header


def test_header_spaces_and_case(tmp_path, ingest):
    header = "  TS , Device ,CO, Humidity,LIGHT,lpg,motion,smoke,temp"
    run = ingest(write(tmp_path, "h.csv", f"{header}\n{row(quote='')}\n"))
    assert_accounted(run, 1)
    assert run.readings["temp"].tolist() == [22.7]


@pytest.mark.parametrize("header", [PLAIN_HEADER + ",temp", "ts,TS" + PLAIN_HEADER[2:]],
                         ids=["temp-twice", "ts-and-TS"])
def test_duplicate_header_clear_error(tmp_path, ingest, header):
    text = f"{header}\n1.6E9,{row(quote='')}\n"
    run = ingest(write(tmp_path, "dup.csv", text))
    assert_user_error(run, "dup.csv", "duplicate")


def test_missing_column_clear_error(tmp_path, ingest):
    header = PLAIN_HEADER.rsplit(",", 1)[0]
    body = row(quote="").rsplit(",", 1)[0]
    run = ingest(write(tmp_path, "m.csv", f"{header}\n{body}\n"))
    assert_user_error(run, "missing column", "temp")


def test_extra_and_index_columns_ignored(tmp_path, ingest):
    text = f",{PLAIN_HEADER},battery\n0,{row(quote='')},3.3\n"
    run = ingest(write(tmp_path, "x.csv", text))
    assert_accounted(run, 1)
    assert run.summary["kept"] == 1


def test_headerless_body_no_crash(tmp_path, ingest):
    """A body without its header is either read in Kaggle order or rejected."""
    run = ingest(write(tmp_path, "body.csv", f"{row()}\n{row(ts='1.6E9')}\n"))
    if run.status == 0:
        assert_accounted(run, 2)
    else:
        assert_user_error(run, "body.csv")


@pytest.mark.parametrize("text", ["", "\n\n\n"], ids=["empty", "blank-lines"])
def test_empty_file_clear_error(tmp_path, ingest, text):
    run = ingest(write(tmp_path, "e.csv", text))
    assert_user_error(run, "empty")


def test_header_only_no_rows(tmp_path, ingest):
    run = ingest(write(tmp_path, "h.csv", HEADER))
    assert_accounted(run, 0)


# Rows


def test_too_many_fields_quarantined(tmp_path, ingest):
    lines = [HEADER, row() + ",x", row(ts="1.59E9") + ",x,y,z", row(ts="1.6E9")]
    run = ingest(write(tmp_path, "many.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, 3)
    assert run.reasons == ["wrong number of fields"] * 2
    assert sorted(run.quarantine["line"].tolist()) == [2, 3]
    assert run.quarantine.sort_values("line")["raw"].tolist() == lines[1:3]


def test_short_row_with_boolean_last_quarantined(tmp_path, ingest):
    """A row cut short before its last boolean must not be kept with <NA>."""
    header = "ts,device,co,humidity,lpg,smoke,temp,light,motion"
    body = f"1594512094.3859746,{DEVICE},0.0049,51.0,0.0076,0.0204,22.7,false"
    run = ingest(write(tmp_path, "short.csv", f"{header}\n{body}\n"))
    assert_accounted(run, 1)
    assert run.summary["kept"] == 0
    assert run.reasons == ["wrong number of fields"]


def test_blank_lines_not_missing_device(tmp_path, ingest):
    """Blank lines (here one trailing) are not readings without a device."""
    text = f"{HEADER}\n\n{row()}\n   \n{row(ts='1.6E9')}\n\n"
    run = ingest(write(tmp_path, "blank.csv", text))
    assert run.summary["kept"] == 2
    assert "missing device" not in run.reasons


def test_short_row_huge_field_quarantined(tmp_path, ingest):
    """A field longer than the csv module's default limit (131,072) in a short row."""
    short = f"1594512094.3859746,{'y' * 200_000},0.1"
    text = f"{PLAIN_HEADER}\n{short}\n{row(ts='1.6E9', quote='')}\n"
    run = ingest(write(tmp_path, "short.csv", text))
    assert_accounted(run, 2)
    assert run.summary["kept"] == 1
    assert run.reasons == ["wrong number of fields"]
    assert run.quarantine["line"].tolist() == [2]


def test_multiline_file_huge_field_quarantined(tmp_path, ingest):
    """A quoted line break makes the reader map rows with the csv module."""
    lines = [HEADER, row(device="a\nb"), row(ts="1.6E9", temp="9" * 200_000),
             row(ts="1.7E9")]
    run = ingest(write(tmp_path, "multi.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, 3)
    assert run.summary["kept"] == 1
    assert run.quarantine.sort_values("line")["line"].tolist() == [2, 4]


def test_truncated_quoted_last_line_no_crash(tmp_path, ingest):
    """A file cut inside a quoted field keeps its whole rows and accounts the rest."""
    text = f"{HEADER}\n{row()}\n{row(ts='1.6E9')[:-3]}"
    run = ingest(write(tmp_path, "cut.csv", text))
    if run.status == 0:
        assert_accounted(run, 2)
        assert run.summary["kept"] == 1
        assert run.quarantine["line"].tolist() == [3]
    else:
        assert_user_error(run, "cut.csv")


def test_quoted_comma_kept_in_field(tmp_path, ingest):
    run = ingest(write(tmp_path, "comma.csv", f"{HEADER}\n{row(device='b8,27')}\n"))
    assert_accounted(run, 1)
    assert run.readings["device"].tolist() == ["b8,27"]


def test_embedded_newline_keeps_lines_right(tmp_path, ingest):
    """After a quoted field with a newline, quarantine rows name their own line."""
    lines = [HEADER, row(temp="22.7\n"), row(ts="1.6E9"),
             row(ts="1.7E9", temp="999")]
    run = ingest(write(tmp_path, "nl.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, 3)
    rejected = run.quarantine.iloc[0]
    assert rejected["reason"].startswith("temp outside")
    assert rejected["raw"] == lines[3]
    assert rejected["line"] == 5


def test_unicode_line_separator_keeps_raw(tmp_path, ingest):
    """Characters that str.splitlines() splits on must not shift the raw text."""
    separators = ["\u2028", "\x85", "\x0c", "\x1e", "\x0b"]
    lines = [HEADER]
    for number, separator in enumerate(separators):
        lines.append(row(ts=f"1.6{number}E9", device=f"dev{separator}x"))
        lines.append(row(ts=f"1.7{number}E9", temp="999"))
    run = ingest(write(tmp_path, "sep.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, 2 * len(separators))
    raw_by_line = dict(zip(run.quarantine["line"], run.quarantine["raw"]))
    for number, separator in enumerate(separators):
        line = 3 + 2 * number
        assert raw_by_line.get(line) == lines[line - 1], repr(separator)


def test_unclosed_quote_does_not_swallow_rows(tmp_path, ingest):
    """An unclosed quote must not hide whole rows inside a kept device id."""
    stamps = [str(1594512000 + i) for i in range(7)]
    lines = [PLAIN_HEADER] + [row(ts=stamp, quote="") for stamp in stamps]
    lines[2] = lines[2].replace(DEVICE, '"' + DEVICE)
    lines[5] = lines[5].replace(DEVICE, DEVICE + '"')
    run = ingest(write(tmp_path, "quote.csv", "\n".join(lines) + "\n"))
    assert not any("\n" in device for device in run.readings["device"])
    kept = {repr(float(stamp)) for stamp in stamps} & set(map(repr, run.readings["ts"]))
    for stamp in stamps:
        in_quarantine = run.quarantine["raw"].str.contains(stamp).any()
        assert repr(float(stamp)) in kept or in_quarantine, stamp


def test_conflict_raw_is_original_line(tmp_path, ingest):
    lines = [HEADER, row(), row(temp="23.0")]
    run = ingest(write(tmp_path, "conflict.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, 2)
    assert run.reasons == ["conflicting duplicate"]
    assert run.quarantine["line"].tolist() == [3]
    assert run.quarantine["raw"].tolist() == [lines[2]]


# ts


BAD_TS = [
    ("1594512094385.9746", "implausible ts"),  # milliseconds
    ("1594512094385", "implausible ts"),
    ("-1594512094.3859746", "implausible ts"),
    ("0", "implausible ts"),
    ("1e309", "implausible ts"),
    ("-1e309", "implausible ts"),
    ("inf", "implausible ts"),
    ("-Infinity", "implausible ts"),
    ("NaN", "unparseable ts"),
    ("nan", "unparseable ts"),
    ("", "unparseable ts"),
    ("1,594,512,094", "unparseable ts"),
    ("0x5F0A5B5E", "unparseable ts"),
    ("true", "unparseable ts"),
    ("2020-13-45T00:00:00", "unparseable ts"),
    ("2020-07-12T00:00:00+25:00", "unparseable ts"),
]


def test_bad_ts_quarantined(tmp_path, ingest):
    lines = [HEADER] + [row(ts=value) for value, _ in BAD_TS] + [row(ts="1.6E9")]
    run = ingest(write(tmp_path, "ts.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, len(BAD_TS) + 1)
    assert run.readings["ts"].tolist() == [1.6e9]
    records = run.quarantine.set_index("line")
    for line, (value, reason) in enumerate(BAD_TS, start=2):
        assert records.loc[line, "reason"] == reason, value
        assert records.loc[line, "raw"] == lines[line - 1], value


def test_daylight_saving_times_named(tmp_path, ingest):
    """New York repeats 01:30 on 2020-11-01 and skips 02:30 on 2020-03-08."""
    lines = [HEADER, row(ts="2020-11-01T01:30:00"), row(ts="2020-03-08T02:30:00"),
             row(ts="2020-07-12T00:00:00")]
    run = ingest(write(tmp_path, "dst.csv", "\n".join(lines) + "\n"),
                 "--timezone", "America/New_York")
    assert_accounted(run, 3)
    reasons = run.quarantine.set_index("line")["reason"]
    assert reasons[2] == "ambiguous local time in America/New_York (daylight saving)"
    assert reasons[3] == "nonexistent local time in America/New_York (daylight saving)"
    assert run.readings["ts"].tolist() == [1594526400.0]


@pytest.mark.parametrize("value", ["now", "today"])
def test_ts_wall_clock_words_rejected(tmp_path, ingest, value):
    """pandas reads "now" as the current time, but a ts must come from the file."""
    run = ingest(write(tmp_path, "now.csv", f"{HEADER}\n{row(ts=value)}\n"))
    assert_accounted(run, 1)
    assert run.reasons == ["unparseable ts"]


def test_ts_slash_date_not_guessed(tmp_path, ingest):
    """12/07/2020 is 12 July or 7 December depending on locale, and is not ISO-8601."""
    text = f"{HEADER}\n{row(ts='12/07/2020 00:01:34')}\n"
    run = ingest(write(tmp_path, "slash.csv", text))
    assert_accounted(run, 1)
    assert run.reasons == ["unparseable ts"]


@pytest.mark.parametrize("with_iso", [False, True], ids=["numeric", "text"])
def test_epoch_ts_bit_equal(tmp_path, ingest, with_iso):
    """Epoch ts in several spellings keeps its bits, as a number or a text column."""
    formats = [repr, java_double_string, "%.17g".__mod__, "%.20g".__mod__,
               "%.25e".__mod__]
    values = np.random.default_rng(7).uniform(1.5e9, 1.7e9, 1000)
    texts = [formats[i % len(formats)](float(value)) for i, value in enumerate(values)]
    lines = [PLAIN_HEADER] + [row(ts=text, quote="") for text in texts]
    expected = [float(text) for text in texts]
    if with_iso:
        # One ISO row makes the ts column text, so the string-parsing path runs.
        lines.append(row(ts="2020-07-12T00:00:00Z", quote=""))
        expected.append(1594512000.0)
    run = ingest(write(tmp_path, "exact.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, len(expected))
    assert run.readings["ts"].tolist() == sorted(expected)


def test_iso_microseconds_exact(tmp_path, ingest):
    """ISO times with µs: time is the written instant, ts its nearest double."""
    rng = np.random.default_rng(3)
    micros = np.sort(rng.integers(1_594_512_000_000_000, 1_595_000_000_000_000, 400))
    stamps = pd.to_datetime(micros, unit="us", utc=True)
    texts = [stamp.isoformat().replace("+00:00", "Z") for stamp in stamps]
    lines = [PLAIN_HEADER] + [row(ts=text, quote="") for text in texts]
    run = ingest(write(tmp_path, "iso.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, 400)
    times = run.readings["time"].dt.tz_convert(None).to_numpy().astype("int64")
    assert int((times != micros).sum()) == 0
    nearest = [float(Fraction(int(us), 10**6)) for us in micros]
    wrong_ts = sum(got != want for got, want in zip(run.readings["ts"], nearest))
    assert wrong_ts == 0


# --timezone


@pytest.mark.parametrize("local", ["2020-10-25 02:30:00", "2020-03-29 02:30:00"],
                         ids=["ambiguous", "nonexistent"])
def test_dst_local_time_quarantined(tmp_path, ingest, local):
    """A local time that DST makes ambiguous or skips is a bad row, not a crash."""
    lines = [HEADER, row(ts=local), row(ts="2020-07-12 02:00:00")]
    path = write(tmp_path, "dst.csv", "\n".join(lines) + "\n")
    run = ingest(path, "--timezone", "Europe/Berlin")
    assert_accounted(run, 2)
    assert run.quarantine["line"].tolist() == [2]
    assert run.readings["ts"].tolist() == [1594512000.0]


def test_dst_local_time_with_offset_kept(tmp_path, ingest):
    text = f"{HEADER}\n{row(ts='2020-10-25 02:30:00+01:00')}\n"
    path = write(tmp_path, "dst.csv", text)
    run = ingest(path, "--timezone", "Europe/Berlin")
    assert_accounted(run, 1)
    assert run.readings["ts"].tolist() == [1603589400.0]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "+02:00", "Europe/Berlin ",
                                  "../../etc/passwd", "a" * 300],
                         ids=["unknown", "empty", "offset", "trailing-space",
                              "path", "too-long"])
def test_invalid_timezone_clear_error(tmp_path, ingest, zone):
    path = write(tmp_path, "k.csv", f"{HEADER}\n{row(ts='2020-07-12 02:00:00')}\n")
    run = ingest(path, "--timezone", zone)
    assert_user_error(run, "time zone")


# Booleans and values


BOOLEAN_TOKENS = [("True", True), (" TRUE ", True), ("yes", True), ("1", True),
                  ("on", True), ("False", False), ("0", False), ("no", False),
                  ("off", False), ("", None)]
ODD_BOOLEAN_TOKENS = ["2", "-1", "truee", "nan", "null", "NA", "ja"]


def test_boolean_spellings(tmp_path, ingest):
    lines = [HEADER] + [row(ts=str(1594512000 + i), light=token)
                        for i, (token, _) in enumerate(BOOLEAN_TOKENS)]
    run = ingest(write(tmp_path, "b.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, len(BOOLEAN_TOKENS))
    for (token, expected), value in zip(BOOLEAN_TOKENS, run.readings["light"]):
        assert (None if pd.isna(value) else bool(value)) is expected, repr(token)


def test_odd_boolean_quarantined(tmp_path, ingest):
    lines = [HEADER] + [row(ts=str(1594512000 + i), light=token)
                        for i, token in enumerate(ODD_BOOLEAN_TOKENS)]
    run = ingest(write(tmp_path, "b.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, len(ODD_BOOLEAN_TOKENS))
    assert run.reasons == ["unknown boolean token in light"] * len(ODD_BOOLEAN_TOKENS)


@pytest.mark.parametrize("token", ["01", "+1", "-0", "1e0"])
def test_boolean_token_same_in_any_file(tmp_path, ingest, token):
    """A token's verdict must not depend on whether pandas saw a numeric column."""
    alone = ingest(write(tmp_path, "alone.csv", f"{HEADER}\n{row(light=token)}\n"))
    mixed_text = f"{HEADER}\n{row(light=token)}\n{row(ts='1.6E9', light='false')}\n"
    mixed = ingest(write(tmp_path, "mixed.csv", mixed_text))
    alone_kept = alone.summary["kept"] == 1
    mixed_kept = 1594512094.3859746 in mixed.readings["ts"].tolist()
    assert alone_kept == mixed_kept


BAD_TEMP = [
    ("inf", "non-finite temp"),
    ("-Infinity", "non-finite temp"),
    ("1e309", "non-finite temp"),
    ("1e308", "temp outside sensor range -40-80 degC"),
    ("80.0000001", "temp outside sensor range -40-80 degC"),
    ("-40.0000001", "temp outside sensor range -40-80 degC"),
    ("22,7", "unparseable number in temp"),
    ("", "missing temp"),
]


def test_bad_temp_quarantined(tmp_path, ingest):
    lines = [HEADER] + [row(ts=str(1594512000 + i), temp=value)
                        for i, (value, _) in enumerate(BAD_TEMP)]
    run = ingest(write(tmp_path, "t.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, len(BAD_TEMP))
    reasons = run.quarantine.set_index("line")["reason"]
    for line, (value, reason) in enumerate(BAD_TEMP, start=2):
        assert reasons[line] == reason, value


def test_nan_temp_reason_non_finite(tmp_path, ingest):
    """NaN is a non-finite number like inf, not an unparseable one."""
    spellings = ["NaN", "nan", "-nan"]
    lines = [HEADER] + [row(ts=str(1594512000 + i), temp=value)
                        for i, value in enumerate(spellings)]
    run = ingest(write(tmp_path, "t.csv", "\n".join(lines) + "\n"))
    assert_accounted(run, len(spellings))
    assert run.reasons == ["non-finite temp"] * len(spellings)


def test_json_nan_temp_reason_non_finite(tmp_path, ingest):
    text = json.dumps([message(temp=float("nan")), message(ts=1594598425.0)])
    run = ingest(write(tmp_path, "nan.json", text))
    assert_accounted(run, 2)
    assert run.reasons == ["non-finite temp"]


# JSON dumps


def test_json_array_of_garbage_accounted(tmp_path, ingest):
    items = [message(), 1, "x", None, [], [message()], True, {"data": None},
             message(ts="1594598424.5"), message(ts=True), message(device_id=5),
             message(temp="18.9"), message(light=1), message(temp={"v": 1}),
             message(ts=-1), message(ts=1594598432000)]
    run = ingest(write(tmp_path, "garbage.json", json.dumps(items)))
    assert_accounted(run, len(items))
    assert run.summary["kept"] == 1
    assert run.reasons.count("message is not a JSON object") == 6
    assert run.reasons.count("implausible ts") == 2
    assert sorted(run.quarantine["line"].tolist()) == list(range(2, len(items) + 1))


@pytest.mark.parametrize("field", ["ts", "temp"])
def test_json_huge_integer_quarantined(tmp_path, ingest, field):
    """json reads 10**400 as an int too large for float64."""
    bad = message() if field == "temp" else message(ts=10**400)
    if field == "temp":
        bad["data"]["temp"] = 10**400
    text = json.dumps([bad, message(ts=1594598425.0)])
    run = ingest(write(tmp_path, "huge.json", text))
    assert_accounted(run, 2)
    assert run.summary["kept"] == 1
    assert run.quarantine["line"].tolist() == [1]


def test_jsonl_over_int_digit_limit_quarantined(tmp_path, ingest):
    """An integer longer than Python's int conversion limit spoils only its own line."""
    digits = "9" * (sys.get_int_max_str_digits() + 1)
    bad = json.dumps(message(ts=1594598425.0)).replace("73.8", digits)
    text = "\n".join([json.dumps(message()), bad, json.dumps(message(ts=1594598426.0))]) + "\n"
    run = ingest(write(tmp_path, "long.jsonl", text))
    assert_accounted(run, 3)
    assert run.summary["kept"] == 2
    assert run.reasons == ["invalid JSON"]
    assert run.quarantine["line"].tolist() == [2]
    assert "digits" in run.quarantine["detail"].iloc[0]


def test_json_array_over_int_digit_limit_clear_error(tmp_path, ingest):
    digits = "9" * (sys.get_int_max_str_digits() + 1)
    text = json.dumps([message(), message(ts=1594598425.0)]).replace("73.8", digits, 1)
    run = ingest(write(tmp_path, "long.json", text))
    assert_user_error(run, "long.json", "invalid json array", "digits")


def test_json_deep_nesting_array_clear_error(tmp_path, ingest):
    run = ingest(write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000))
    assert_user_error(run, "deep.json")


def test_json_deep_nesting_object_quarantined(tmp_path, ingest):
    nested = '{"a":' * 100_000 + "1" + "}" * 100_000
    text = '[{"data":' + nested + ',"device_id":"a","ts":1594598424},'
    text += json.dumps(message()) + "]"
    run = ingest(write(tmp_path, "deep.json", text))
    if run.status == 0:
        assert_accounted(run, 2)
        assert run.summary["kept"] == 1
    else:
        assert_user_error(run, "deep.json")


def test_message_too_deep_to_encode_quarantined():
    """A message json.loads accepted may still be too deep for json.dumps."""
    from iot_telemetry.data.messages import parse_messages

    nested: dict = {}
    for _ in range(sys.getrecursionlimit() + 100):
        nested = {"a": nested}
    deep = {"data": nested, "device_id": DEVICE, "ts": 1594598424.0}
    readings, quarantine = parse_messages([deep, message()], "deep.json")
    assert len(readings) == 1
    assert quarantine["line"].tolist() == [1]
    assert quarantine["reason"].tolist() == ["missing field"]
    assert "nested too deeply" in quarantine["raw"].iloc[0]


@pytest.mark.slow
def test_json_near_parse_depth_no_crash(tmp_path, ingest):
    """Depths just below the parse limit: quarantined or a clear error, never a crash."""
    limit = sys.getrecursionlimit()
    for depth in range(limit - 150, limit + 10):
        text = ('[{"data":' + '{"a":' * depth + "1" + "}" * depth
                + ',"device_id":"a","ts":1594598424},' + json.dumps(message()) + "]")
        run = ingest(write(tmp_path, "deep.json", text))
        if run.status == 0:
            assert_accounted(run, 2)
        else:
            assert_user_error(run, "deep.json")


def test_jsonl_deep_nesting_line_quarantined(tmp_path, ingest):
    text = json.dumps(message()) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n"
    run = ingest(write(tmp_path, "deep.jsonl", text))
    assert_accounted(run, 2)
    assert run.summary["kept"] == 1
    assert run.quarantine["line"].tolist() == [2]


def test_jsonl_trailing_partial_line(tmp_path, ingest):
    lines = [json.dumps(message(ts=1594598424.0 + i)) for i in range(3)]
    text = "\n".join(lines)[:-25]
    run = ingest(write(tmp_path, "cut.jsonl", text))
    assert_accounted(run, 3)
    assert run.summary["kept"] == 2
    assert run.reasons == ["invalid JSON"]
    assert run.quarantine["line"].tolist() == [3]


def test_jsonl_garbage_lines_accounted(tmp_path, ingest):
    good = json.dumps(message())
    text = "\n".join([good, "not json", "{}", "[1,2]", '"str"', "",
                      json.dumps(message(ts=1594598444.0))]) + "\n"
    run = ingest(write(tmp_path, "g.jsonl", text))
    assert_accounted(run, 6)
    assert run.summary["kept"] == 2
    assert sorted(run.quarantine["line"].tolist()) == [2, 3, 4, 5]


@pytest.mark.parametrize("separator", ["\u2028", "\x85"], ids=["u2028", "nel"])
def test_jsonl_unicode_separator_in_string(tmp_path, ingest, separator):
    """A JSON Lines message may contain a raw U+2028 or U+0085 in a string."""
    first = json.dumps(message(alias=f"iot{separator}01"), ensure_ascii=False)
    text = first + "\n" + json.dumps(message(ts=1594598425.0)) + "\n"
    run = ingest(write(tmp_path, "sep.jsonl", text.encode()))
    assert_accounted(run, 2)
    assert run.summary["kept"] == 2


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_lone_surrogate_device_quarantined(tmp_path, ingest, suffix):
    """A "\\ud800" escape decodes to a lone surrogate, which is not valid Unicode."""
    items = [message(device_id="\ud800abc"), message(ts=1594598425.0, alias="\udfff"),
             message(ts=1594598426.0)]
    if suffix == ".json":
        text = json.dumps(items)
    else:
        text = "\n".join(map(json.dumps, items)) + "\n"
    run = ingest(write(tmp_path, "surrogate" + suffix, text))
    assert_accounted(run, 3)
    assert run.summary["kept"] == 1
    assert run.reasons == ["invalid device id"] * 2
    assert sorted(run.quarantine["line"].tolist()) == [1, 2]


def test_pretty_printed_object_is_one_message(tmp_path, ingest):
    run = ingest(write(tmp_path, "one.json", json.dumps(message(), indent=2)))
    assert_accounted(run, 1)
    assert run.summary["kept"] == 1


def test_truncated_json_array_clear_error(tmp_path, ingest):
    text = json.dumps([message(), message(ts=1594598425.0)])[:-30]
    run = ingest(write(tmp_path, "cut.json", text))
    assert_user_error(run, "cut.json", "invalid json")


# Zip archives


def test_zip_several_members_accounted(tmp_path, ingest):
    members = {
        "a.json": json.dumps([message(), message(ts=1594598425.0)]),
        "b.jsonl": json.dumps(message(ts=1594598426.0)) + "\n",
        "data/": "",
        "data/c.csv": f"{HEADER}\n{row()}\n",
    }
    run = ingest(write_zip(tmp_path, "multi.zip", members))
    assert_accounted(run, 4)
    assert run.summary["kept"] == 4
    assert len(run.summary["inputs"]) == 3


@pytest.mark.parametrize("members", [{}, {"data/": ""}], ids=["empty", "folder-only"])
def test_zip_without_files_clear_error(tmp_path, ingest, members):
    run = ingest(write_zip(tmp_path, "e.zip", members))
    assert_user_error(run, "zip")


@pytest.mark.parametrize("member", ["readme.txt", "inner.zip"])
def test_zip_without_readable_member_not_silent(tmp_path, ingest, member):
    """A zip whose only member is skipped must give an error or a quarantine record."""
    run = ingest(write_zip(tmp_path, "odd.zip", {member: b"PK not telemetry"}))
    if run.status == 0:
        assert run.summary["quarantined"] == 1
        record = run.quarantine.iloc[0]
        assert member in record["source"] + record["raw"]
    else:
        assert_user_error(run, "odd.zip")


@pytest.mark.parametrize("content", [b"PK\x03\x04garbage", b"hello world"],
                         ids=["corrupt", "not-a-zip"])
def test_bad_zip_clear_error(tmp_path, ingest, content):
    run = ingest(write(tmp_path, "bad.zip", content))
    assert_user_error(run, "bad.zip")


def test_zip_blank_lines_expansion_clear_error(tmp_path, ingest):
    """Millions of blank lines compress about 1,000 times and cost ~170 bytes each to parse."""
    text = HEADER + "\n" + "\n" * 4_000_000 + row() + "\n"
    run = ingest(write_zip(tmp_path, "blank.zip", {"a.csv": text}))
    assert_user_error(run, "blank.zip", "a.csv", "unzip")


def test_zip_small_repetitive_member_read(tmp_path, ingest):
    """Below 1 MiB a member is read whatever its compression ratio."""
    text = HEADER + "\n" + "\n" * 500_000 + row() + "\n"
    run = ingest(write_zip(tmp_path, "small.zip", {"a.csv": text}))
    assert_accounted(run, 1)
    assert run.summary["kept"] == 1


def _write_zip_bomb(path: Path, gib: int) -> None:
    """Write a zip64 archive with one member "a.json": "[", `gib` GiB of spaces, "]".

    The deflate stream repeats one compressed block (a full flush leaves the
    compressor in the same state after each block of spaces), so the file is
    built in seconds instead of compressing gigabytes.
    """
    chunk = b" " * (1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(b"[" + chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeats = gib * 1024 - 1
    data = head + block * repeats + compressor.compress(b"]") + compressor.flush()
    size = (repeats + 1) * len(chunk) + 2
    crc = zlib.crc32(chunk, zlib.crc32(b"["))
    for _ in range(repeats):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(b"]", crc)

    name = b"a.json"
    sizes = struct.pack("<HHQQ", 1, 16, size, len(data))  # zip64 extra field
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 45, 0, 8, 0, 0, crc,
                        0xFFFFFFFF, 0xFFFFFFFF, len(name), len(sizes))
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, 0, 8, 0, 0, crc,
                          0xFFFFFFFF, 0xFFFFFFFF, len(name), len(sizes), 0, 0, 0, 0, 0)
    with path.open("wb") as handle:
        handle.write(local + name + sizes + data)
        start = handle.tell()
        handle.write(central + name + sizes)
        length = handle.tell() - start
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, length, start, 0)
        handle.write(end)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="RLIMIT_AS is Linux-only")
def test_zip_bomb_no_crash(tmp_path):
    """A 4 MB zip with a 3 GiB member under a 2 GiB memory limit: no MemoryError."""
    import resource

    bomb = tmp_path / "bomb.zip"
    _write_zip_bomb(bomb, 3)
    with zipfile.ZipFile(bomb) as archive:
        assert archive.infolist()[0].file_size > 3 * 2**30
    small = write(tmp_path, "k.csv", f"{HEADER}\n{row()}\n")

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    def run(path):
        return subprocess.run(
            [str(CLI), "ingest", str(path), "--out", str(tmp_path / "out")],
            capture_output=True, text=True, preexec_fn=limit_memory, timeout=600,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        )

    control = run(small)
    assert control.returncode == 0, control.stderr
    result = run(bomb)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    assert "bomb.zip" in result.stderr.strip().splitlines()[-1]


# Folders and Parquet


@pytest.mark.parametrize("content", [None, "csv"], ids=["empty", "csv-only"])
def test_folder_without_parquet_clear_error(tmp_path, ingest, content):
    folder = tmp_path / "capture"
    folder.mkdir()
    if content:
        write(folder, "a.csv", f"{HEADER}\n{row()}\n")
    run = ingest(folder)
    assert_user_error(run, "no parquet")


def test_parquet_wrong_columns_clear_error(tmp_path, ingest):
    path = tmp_path / "wrong.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    run = ingest(path)
    assert_user_error(run, "missing column")


def test_parquet_wrong_dtypes_quarantined(tmp_path, ingest):
    frame = pd.DataFrame({
        "device": [DEVICE, DEVICE, DEVICE], "ts": ["1594512094.3859746", "1.6E9", "x"],
        "co": [0.0049] * 3, "humidity": [51.0] * 3, "lpg": [0.0076] * 3,
        "smoke": [0.0204] * 3, "temp": ["22.7", "hot", "22.7"],
        "light": ["false", "true", "false"], "motion": [False] * 3,
    })
    path = tmp_path / "strings.parquet"
    frame.to_parquet(path)
    run = ingest(path)
    assert_accounted(run, 3)
    assert run.readings["ts"].tolist() == [1594512094.3859746]
    assert run.reasons == ["unparseable number in temp", "unparseable ts"]


def test_parquet_undecodable_device_quarantined(tmp_path, ingest):
    """A binary device or alias column with bytes that are not UTF-8."""
    frame = pd.DataFrame({
        "device": [b"a\xff", DEVICE.encode(), DEVICE.encode()],
        "ts": [1594512094.3859746, 1.6e9, 1.7e9],
        "co": [0.0049] * 3, "humidity": [51.0] * 3, "lpg": [0.0076] * 3,
        "smoke": [0.0204] * 3, "temp": [22.7] * 3,
        "light": [False] * 3, "motion": [False] * 3,
        "alias": [b"x", b"\xfe", b"iot-device-01"],
    })
    path = tmp_path / "bytes.parquet"
    frame.to_parquet(path)
    run = ingest(path, "--no-aliases")
    assert_accounted(run, 3)
    assert run.readings["device"].tolist() == [DEVICE]
    assert run.readings["alias"].tolist() == ["iot-device-01"]
    assert run.readings["ts"].tolist() == [1.7e9]
    assert run.reasons == ["invalid device id"] * 2
    assert "a\\xff" in run.quarantine["device"].tolist()


@pytest.mark.parametrize("content",
                         [b"PAR1garbagePAR1", f"{HEADER}\n{row()}\n".encode()],
                         ids=["corrupt", "csv-named-parquet"])
def test_bad_parquet_clear_error(tmp_path, ingest, content):
    run = ingest(write(tmp_path, "bad.parquet", content))
    assert_user_error(run, "bad.parquet")


# Several inputs and output folder


def test_same_file_twice_all_duplicates(tmp_path, ingest, kaggle_head):
    run = ingest(kaggle_head, kaggle_head)
    assert_accounted(run, 18)
    assert run.summary["kept"] == 9
    assert run.summary["duplicates"] == 9
    assert run.summary["quarantined"] == 0
    assert [part["rows"] for part in run.summary["inputs"]] == [9, 9]


def test_conflict_across_files_first_kept(tmp_path, ingest):
    first = write(tmp_path, "a.csv", f"{HEADER}\n{row()}\n{row(ts='1.6E9')}\n")
    second_text = f"{HEADER}\n{row(temp='23.0')}\n{row(ts='1.6E9')}\n"
    second = write(tmp_path, "b.csv", second_text)
    run = ingest(first, second)
    assert_accounted(run, 4)
    assert run.summary["duplicates"] == 1
    assert run.reasons == ["conflicting duplicate"]
    assert run.quarantine["source"].tolist() == [str(second)]
    assert run.quarantine["line"].tolist() == [2]
    assert run.readings["temp"].tolist() == [22.7, 22.7]


@pytest.mark.parametrize("alias", ["A", "=B", "A="])
def test_invalid_alias_clear_error(tmp_path, ingest, alias):
    run = ingest(write(tmp_path, "k.csv", f"{HEADER}\n{row()}\n"), "--alias", alias)
    assert_user_error(run, "alias")


def test_out_is_a_file_clear_error(tmp_path):
    path = write(tmp_path, "k.csv", f"{HEADER}\n{row()}\n")
    existing_file = write(tmp_path, "existing", "")
    assert main(["ingest", str(path), "--out", str(existing_file)]) == 2
    assert main(["ingest", str(path), "--out", str(existing_file / "sub")]) == 2


def test_out_file_is_a_folder_clear_error(tmp_path):
    path = write(tmp_path, "k.csv", f"{HEADER}\n{row()}\n")
    out = tmp_path / "out"
    (out / "readings.parquet").mkdir(parents=True)
    status = main(["ingest", str(path), "--out", str(out)])
    assert status == 2
    assert not (out / "quarantine.parquet").exists()


def test_out_read_only_clear_error(tmp_path, caplog):
    path = write(tmp_path, "k.csv", f"{HEADER}\n{row()}\n")
    if os.geteuid() == 0:
        # Root writes through folder permissions, but not into sysfs.
        out = Path("/sys")
    else:
        out = tmp_path / "out"
        out.mkdir()
        out.chmod(0o555)
    try:
        assert main(["ingest", str(path), "--out", str(out)]) == 2
    finally:
        if out != Path("/sys"):
            out.chmod(0o755)
    assert f"cannot write --out {out / 'readings.parquet'}" in caplog.text


def test_write_failure_names_file(tmp_path, monkeypatch, caplog):
    """A write that fails after the checks (a full disk, say) is one line, not a traceback."""
    path = write(tmp_path, "k.csv", f"{HEADER}\n{row()}\n")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)
    with caplog.at_level(logging.ERROR):
        status = main(["ingest", str(path), "--out", str(tmp_path / "out")])
    assert status == 2
    errors = [record.getMessage() for record in caplog.records
              if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "readings.parquet" in errors[0]
    assert "No space left" in errors[0]


# Large inputs: counts only, because tests assert no timings


@pytest.mark.slow
def test_all_bad_100k_rows_accounted(tmp_path, ingest):
    rows = [row(ts=str(1594512000 + i), temp="999") for i in range(100_000)]
    run = ingest(write(tmp_path, "bad.csv", HEADER + "\n" + "\n".join(rows) + "\n"))
    assert_accounted(run, 100_000)
    assert run.summary["quarantined_by_reason"] == {
        "temp outside sensor range -40-80 degC": 100_000
    }


@pytest.mark.slow
def test_alternating_bad_field_counts_lines(tmp_path, ingest):
    """Every second row has two extra fields, and each other row names its own line."""
    rows = [row(ts=str(1594512000 + i), temp="999") + (",x,y" if i % 2 else "")
            for i in range(20_000)]
    run = ingest(write(tmp_path, "alt.csv", HEADER + "\n" + "\n".join(rows) + "\n"))
    assert_accounted(run, 20_000)
    temp = run.quarantine[run.quarantine["reason"].str.startswith("temp")]
    assert len(temp) == 10_000
    assert bool(((temp["line"] - 2) % 2 == 0).all())
    assert bool(temp["raw"].str.endswith('"999"').all())


@pytest.mark.slow
def test_capture_twice_all_duplicates(tmp_path, ingest, mqtt_capture):
    run = ingest(mqtt_capture, mqtt_capture)
    assert_accounted(run, 100_540)
    assert run.summary["kept"] == 50_269
    assert run.summary["duplicates"] == 50_271
    assert run.summary["quarantined"] == 0


def test_no_valid_rows_warns(tmp_path, ingest, caplog):
    path = write(tmp_path, "bad.csv", HEADER + "\n" + row(light="maybe") + "\n")
    run = ingest(path)
    assert run.status == 0
    assert_accounted(run, 1)
    assert run.summary["kept"] == 0
    warnings = [record.getMessage() for record in caplog.records
                if record.levelno == logging.WARNING]
    (warning,) = [text for text in warnings if "no valid readings" in text]
    assert "quarantine.parquet" in warning


@pytest.mark.parametrize("days", ["1e9", "0", "nan"])
def test_synthesize_days_out_of_range(tmp_path, caplog, days):
    status = main(["synthesize", "--out", str(tmp_path / "twin.csv"), "--days", days])
    assert status == 2
    assert "--days must be above 0 and at most 366" in caplog.text
    assert not (tmp_path / "twin.csv").exists()
