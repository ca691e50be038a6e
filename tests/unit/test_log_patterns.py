"""The pattern catalogue and user-defined patterns, including their config errors."""

from __future__ import annotations

import pytest

from mongooseim_agent.config import ConfigError, parse_config
from mongooseim_agent.mongooseim.log_patterns import (
    catalogue,
    compile_user_regex,
    default_names,
    user_pattern,
)
from mongooseim_agent.snapshot import Status


def test_defaults_cover_the_documented_faults() -> None:
    """emfile, enfile, system_limit, partition, nodedown, cookie_rejected, eaddrinuse."""
    assert default_names() == {"emfile", "enfile", "system_limit", "partition", "nodedown",
                               "cookie_rejected", "eaddrinuse"}
    severities = {p.name: p.severity for p in catalogue()}
    assert severities["emfile"] is Status.CRITICAL
    assert severities["partition"] is Status.CRITICAL
    assert severities["cookie_rejected"] is Status.WARNING
    assert all(p.hint and p.meaning for p in catalogue())


def test_user_pattern_replacing_a_default_keeps_its_severity() -> None:
    """Redefining emfile for another log format still pages as emfile did."""
    custom = user_pattern("emfile", regex=r"too many open files")
    chosen = {p.name: p for p in catalogue([custom])}
    assert chosen["emfile"].matches(b"accept: too many open files")
    assert not chosen["emfile"].matches(b"reason=emfile")
    assert chosen["emfile"].severity is Status.CRITICAL


def test_user_patterns_follow_the_defaults_sorted() -> None:
    extra = [user_pattern("zz", literal="z"), user_pattern("aa", literal="a")]
    assert [p.name for p in catalogue(extra)][-2:] == ["aa", "zz"]


@pytest.mark.parametrize(("regex", "message"), [
    ("a(", "invalid regex: missing ), unterminated subpattern at position 1"),
    ("x*", "regex matches an empty line"),
    ("^", "regex matches an empty line"),
])
def test_bad_regexes(regex: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_user_regex(regex)


def test_regex_anchors_are_per_line() -> None:
    """^ and $ anchor at line boundaries inside a whole read."""
    rx = compile_user_regex(r"^level=error$")
    assert rx.search(b"x\nlevel=error\ny") is not None


@pytest.mark.parametrize(("logs", "message"), [
    ({"patterns": {"slow": {"regex": "a("}}},
     "logs.patterns.slow.regex: invalid regex: missing ), unterminated subpattern at "
     "position 1 (got 'a(')"),
    ({"patterns": {"slow": {"regex": ".*"}}},
     "logs.patterns.slow.regex: regex matches an empty line, so it would count every line "
     "(got '.*')"),
    ({"patterns": {"slow": {"literal": "a", "regex": "b"}}},
     "logs.patterns.slow: set exactly one of 'literal' or 'regex'"),
    ({"patterns": {"slow": {"literal": ""}}},
     "logs.patterns.slow.literal: literal must not be empty (got '')"),
    ({"patterns": {"Slow Query": {"literal": "x"}}},
     "logs.patterns: pattern name 'Slow Query': expected lower case letters"),
    ({"paths": ["log/mongooseim.log*"]},
     "logs.paths: path 'log/mongooseim.log*' must be absolute"),
    ({"start_at": "middle"}, "logs.start_at: Input should be 'end' or 'beginning'"),
    ({"max_line_bytes": 10}, "logs.max_line_bytes: Input should be greater than or equal"),
    ({"journal_unit": "mongoose im"},
     "logs.journal_unit: expected a systemd unit name such as mongooseim.service"),
    ({"poll_interval": "soon"}, "logs.poll_interval: expected a duration"),
])
def test_config_errors_name_key_and_value(logs: dict[str, object], message: str) -> None:
    """Each bad [logs] setting is refused with its key path and the bad value."""
    with pytest.raises(ConfigError) as info:
        parse_config({"logs": logs})
    assert message in str(info.value)


def test_config_defaults_and_patterns() -> None:
    config = parse_config({"logs": {"poll_interval": "100ms",
                                    "patterns": {"slow": {"literal": "slow query"}}}})
    assert config.logs.poll_interval == pytest.approx(0.1)
    assert config.logs.start_at == "end"
    assert config.logs.paths == ()
    assert config.logs.patterns["slow"].literal == "slow query"
