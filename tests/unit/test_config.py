"""Bad configs are refused with the key path and the bad value, before anything starts."""

from pathlib import Path

import pytest

from mongooseim_agent.config import Config, ConfigError, load_config, parse_config

BAD_CONFIGS = [
    (
        "[fds]\nintervl = 3\n",
        "fds.intervl: unknown key; did you mean 'interval'?",
    ),
    (
        "[nod]\nname = 'x'\n",
        "nod: unknown key; did you mean 'node'?",
    ),
    (
        "[fds]\ninterval = 'soon'\n",
        "fds.interval: expected a duration such as 5, 2.5, '500ms', '15s' or '1m' (got 'soon')",
    ),
    (
        "[fds]\ninterval = -1\n",
        "fds.interval: Input should be greater than 0 (got -1)",
    ),
    (
        "[fds]\nwarning_ratio = 0.95\n",
        "fds: warning_ratio (0.95) must not exceed critical_ratio (0.9)",
    ),
    (
        "[fds]\ncritical_ratio = 1.5\n",
        "fds.critical_ratio: Input should be less than or equal to 1 (got 1.5)",
    ),
    (
        "[fds]\ninterval = '1s'\ntimeout = '2s'\n",
        "fds.timeout: must not exceed interval (1s) (got '2s')",
    ),
    (
        "[vm]\ninterval = '3s'\ntimeout = 4\n",
        "vm.timeout: must not exceed interval (3s) (got 4)",
    ),
    (
        "[probes]\ninterval = '500ms'\ntimeout = '1s'\n",
        "probes.timeout: must not exceed interval (0.5s) (got '1s')",
    ),
    (
        "[node]\nname = 'mongooseim@host one'\n",
        "node.name: expected a node name such as mongooseim@localhost "
        "(got 'mongooseim@host one')",
    ),
    (
        "[logs.patterns.slow]\nlitral = 'x'\n",
        "logs.patterns.slow.litral: unknown key; did you mean 'literal'?",
    ),
    (
        "fds = 3\n",
        "fds: expected a table, got 3",
    ),
    (
        "[agent]\nstate_dir = 5\n",
        "agent.state_dir: Input is not a valid path (got 5)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_names_key_and_value(tmp_path: Path, text: str, message: str) -> None:
    """Each bad config raises ConfigError whose text names the file, key path and value."""
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"


def test_all_errors_reported_at_once() -> None:
    """Two bad keys give two lines, so an operator fixes the file in one pass."""
    with pytest.raises(ConfigError) as info:
        parse_config({"fds": {"interval": 0, "bogus": 1}}, "f.toml")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "fds.interval" in lines[0]
    assert "fds.bogus: unknown key" in lines[1]


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    """Syntax errors and a missing explicit file are ConfigErrors naming the file."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[fds\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file"):
        load_config(tmp_path / "nope.toml")


def test_durations_and_defaults() -> None:
    """Durations accept seconds or units; omitted sections take defaults; models are frozen."""
    config = parse_config({"fds": {"interval": "1m", "timeout": "500ms"}})
    assert config.fds.interval == 60.0
    assert config.fds.timeout == 0.5
    assert config.node.name is None
    with pytest.raises(ValueError, match="frozen"):
        config.fds.interval = 1  # type: ignore[misc]
    assert Config() == parse_config({})


def test_unknown_key_without_close_match_lists_valid_keys() -> None:
    """With no near miss, the error lists what the section accepts."""
    with pytest.raises(ConfigError) as info:
        parse_config({"agent": {"zzz": 1}}, "f.toml")
    assert str(info.value) == "f.toml: agent.zzz: unknown key (valid keys: state_dir)"


PERIODIC = sorted(
    name for name, field in Config.model_fields.items()
    if "timeout" in getattr(field.annotation, "model_fields", {})
    and "interval" in getattr(field.annotation, "model_fields", {})
)


def test_every_section_with_a_timeout_is_covered() -> None:
    """The sections checked below are all those with an interval and a timeout."""
    assert {"fds", "vm", "probes", "process"} <= set(PERIODIC)


@pytest.mark.parametrize("section", PERIODIC)
def test_unset_timeout_shrinks_to_a_short_interval(section: str) -> None:
    """Like Prometheus' scrape_timeout: an unset timeout is min(its default, interval); an
    explicit one above the interval is refused on <section>.timeout."""
    config = parse_config({section: {"interval": "1s"}})
    assert getattr(config, section).timeout == 1.0
    longer = parse_config({section: {"interval": "24h"}})
    assert getattr(longer, section).timeout == getattr(Config(), section).timeout
    with pytest.raises(ConfigError, match=rf"{section}\.timeout: must not exceed interval"):
        parse_config({section: {"interval": "1s", "timeout": "2s"}})


def test_interval_alone_loads_from_a_file(tmp_path: Path) -> None:
    """The issue's reproduction: a file with only `[fds] interval = "1s"` starts."""
    path = tmp_path / "agent.toml"
    path.write_text('[fds]\ninterval = "1s"\n')
    assert load_config(path).fds.timeout == 1.0
