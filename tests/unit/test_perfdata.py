"""Perfdata rendering held to a strict parser of the Monitoring Plugins guidelines."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mongooseim_agent import perfdata
from mongooseim_agent.commands import check
from mongooseim_agent.snapshot import Check, Perf, Snapshot, Status
from mongooseim_agent.store import Store
from tests.support.perfparse import PerfdataError, parse_perfdata, range_alerts, split_output


def test_parser_rejects_what_the_guidelines_forbid() -> None:
    """The strict parser itself: exponents, locale commas, bad units and ranges fail."""
    for bad in ("a=1.67772e+07", "a=1,5", "a=1xyz", "a=1;10;20;0;100;7", "a b=1",
                "a=1;abc", "a=1;;;x", "'a=1", "a=1 a=2", "=1"):
        with pytest.raises(PerfdataError):
            parse_perfdata(bad)
    parsed = parse_perfdata("'open fds'=5;8;9;0;10 t=0.25s c=3c;;;0 u=U")
    assert parsed["open fds"].value == 5 and parsed["open fds"].max == 10
    assert parsed["t"].uom == "s" and parsed["u"].value is None


def test_decimal_never_uses_an_exponent() -> None:
    """16777216 stays 16777216 (not 1.67772e+07); tiny durations stay decimals."""
    assert perfdata.decimal(16777216.0) == "16777216"
    assert perfdata.decimal(1e20) == "100000000000000000000"
    assert perfdata.decimal(0.000123) == "0.000123"
    assert perfdata.decimal(2.5) == "2.5"
    assert perfdata.decimal(float("nan")) == "U"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30))
def test_any_finite_value_renders_as_a_parsable_plain_decimal(value: float) -> None:
    """Whatever a collector measures, the rendered perfdata parses and is close to it."""
    rendered = perfdata.render("x", Perf(value, "s", min=0))
    parsed = parse_perfdata(rendered)["x"]
    assert parsed.value is not None and abs(parsed.value - value) <= 5e-7 + abs(value) * 1e-15


@given(st.text(max_size=30))
def test_any_label_renders_parsable_and_quoted_only_when_needed(name: str) -> None:
    """Listener names come from config: spaces, quotes or '=' never break the perfdata."""
    rendered = perfdata.render(name, Perf(1))
    (parsed,) = parse_perfdata(rendered)
    assert "'" not in parsed and "=" not in parsed and not any(c.isspace() for c in parsed)
    assert rendered.startswith("'") == (not re.fullmatch(r"[A-Za-z0-9_.-]+", parsed))


@given(st.floats(min_value=0.01, max_value=1.0), st.integers(min_value=1, max_value=10**7),
       st.integers(min_value=0, max_value=10**7))
def test_threshold_alerts_exactly_when_the_check_does(ratio: float, size: int, used: int
                                                      ) -> None:
    """Icinga's `value > N` agrees with the check's `used / size >= ratio` for every count."""
    threshold = perfdata.above(ratio, size)
    assert range_alerts(str(threshold), used) == (used / size >= ratio)


def _store(*checks: Check, error: str | None = None) -> Store:
    store = Store()
    store.put(Snapshot("a", checks=tuple(checks)))
    if error:
        store.put(Snapshot("b", error=error))
    return store


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n')
    return path


def _args(config: Path, *only: str, as_json: bool = False) -> argparse.Namespace:
    return argparse.Namespace(config=config, only=list(only), json=as_json)


FDS = Check("node_fds", Status.OK, "10 of 100", perfdata={
    "open_fds": Perf(10, warn=perfdata.above(0.8, 100), crit=perfdata.above(0.9, 100),
                     min=0, max=100)})
LOG = Check("log_emfile", Status.CRITICAL, "emfile seen", perfdata={"emfile": Perf(3, "c")})


def test_only_judges_the_selected_checks(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    """--only node_fds exits 0 although another check is CRITICAL, with its perfdata only."""
    code = check.run_check(_args(config, "node_fds"), collect=lambda c: _store(FDS, LOG))
    first = capsys.readouterr().out.splitlines()[0]
    assert code == 0
    text, perf = split_output(first)
    assert text == "MONGOOSEIM OK - 1 checks OK"
    assert list(parse_perfdata(perf)) == ["open_fds"]
    assert parse_perfdata(perf)["open_fds"].warn == "79"


def test_only_with_an_unknown_name_lists_the_valid_ones(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    """A typo is UNKNOWN (3) naming every valid check, not a silent OK."""
    code = check.run_check(_args(config, "node_fd"), collect=lambda c: _store(FDS, LOG))
    out = capsys.readouterr().out
    assert code == 3
    assert out.startswith("MONGOOSEIM UNKNOWN - no check named node_fd")
    assert "drain, log_emfile, node_fds" in out


def test_full_check_perfdata_parses_and_json_keeps_its_fields(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    """The worst state decides; JSON has name, status, summary, hint, perfdata per check."""
    code = check.run_check(_args(config, ), collect=lambda c: _store(FDS, LOG))
    out = capsys.readouterr().out
    assert code == 2
    text, perf = split_output(out.splitlines()[0])
    assert text.startswith("MONGOOSEIM CRITICAL - log_emfile: emfile seen")
    assert set(parse_perfdata(perf)) == {"open_fds", "emfile"}
    code = check.run_check(_args(config, as_json=True), collect=lambda c: _store(FDS, LOG))
    report = json.loads(capsys.readouterr().out)
    fds = next(c for c in report["checks"] if c["name"] == "node_fds")
    assert {"name", "status", "summary", "hint", "perfdata"} <= set(fds)
    assert fds["perfdata"] == {"open_fds": 10}
    assert fds["perfdata_detail"]["open_fds"]["max"] == 100


def test_one_reason_failing_many_checks_is_said_once(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    """Every log check UNKNOWN for one reason reads as one clause on the status line."""
    why = "no running agent"
    checks = [Check(f"log_{n}", Status.UNKNOWN, why) for n in ("a", "b")]
    check.run_check(_args(config, ), collect=lambda c: _store(*checks))
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"MONGOOSEIM UNKNOWN - log_a, log_b: {why}"
