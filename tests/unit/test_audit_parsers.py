"""The audit's pure parsers: limits.conf, unit files, PAM stacks, sysctl, passwd, /proc/net/tcp."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mongooseim_agent.mongooseim.audit import accounts, limits, pam, sockets, sysctl, systemd

MONGOOSEIM = limits.Principal("mongooseim", 999, frozenset({"mongooseim", "xmpp"}),
                              frozenset({999, 1001}))
ROOT = limits.Principal("root", 0, frozenset({"root", "xmpp"}), frozenset({0, 1001}))


def _resolve(text: str, who: limits.Principal = MONGOOSEIM, *more: str) -> limits.Resolved:
    rules = list(limits.parse_limits_conf(text, "/etc/security/limits.conf").rules)
    for index, extra in enumerate(more):
        rules += limits.parse_limits_conf(extra, f"/etc/security/limits.d/{index}.conf").rules
    return limits.resolve(rules, "nofile", who)


def _values(resolved: limits.Resolved) -> tuple[int | None, int | None]:
    return (resolved.soft.value if resolved.soft else None,
            resolved.hard.value if resolved.hard else None)


def test_limits_comment_lines_and_trailing_comments_do_not_count() -> None:
    """`#` lines and `# ...` tails are ignored; the live entry is what remains."""
    text = "#mongooseim - nofile 5\n  # mongooseim - nofile 6\nmongooseim - nofile 7 # tail\n"
    assert _values(_resolve(text)) == (7, 7)


def test_limits_user_beats_group_beats_wildcard_regardless_of_order() -> None:
    """pam_limits ranks a user entry over @group over `*`, whatever the line order."""
    text = "mongooseim soft nofile 100\n@xmpp soft nofile 200\n* soft nofile 300\n" \
           "@xmpp hard nofile 400\n* hard nofile 500\n"
    assert _values(_resolve(text)) == (100, 400)


def test_limits_later_file_overrides_equal_rank_and_dash_sets_both() -> None:
    """limits.d after limits.conf: a later entry of the same rank wins; `-` is soft and hard."""
    resolved = _resolve("mongooseim - nofile 100000\n", MONGOOSEIM,
                        "mongooseim soft nofile 1000000\n")
    assert _values(resolved) == (1000000, 100000)
    assert resolved.soft is not None and resolved.soft.path.endswith("limits.d/0.conf")


def test_limits_group_and_wildcard_do_not_apply_to_root() -> None:
    """As limits.conf(5) says: root gets only entries naming root."""
    text = "* - nofile 100\n@xmpp - nofile 200\n0: - nofile 300\n"
    assert not _resolve(text, ROOT).is_set
    assert _values(_resolve(text + "root soft nofile 50\n", ROOT)) == (50, None)


def test_limits_uid_and_gid_ranges() -> None:
    """`1000:` ranges rank below groups; a single uid counts as the user; `@gid:gid` is a group."""
    assert _values(_resolve("900:1000 - nofile 10\n* - nofile 20\n")) == (10, 10)
    assert _values(_resolve("999 soft nofile 11\n@xmpp soft nofile 12\n")) == (11, None)
    assert _values(_resolve("@1001:1001 hard nofile 13\n500: hard nofile 14\n")) == (None, 13)
    assert not _resolve("1000: - nofile 10\n").is_set


def test_limits_unlimited_and_problems() -> None:
    """unlimited/infinity/-1 mean unlimited; malformed lines are problems with their line."""
    parsed = limits.parse_limits_conf(
        "a - nofile unlimited\nb - nofile infinity\nc - nofile -1\nbroken line\n"
        "d medium nofile 5\ne - nofile lots\n", "f")
    assert [r.value for r in parsed.rules] == [None, None, None]
    assert [(p.line, p.message.split()[0]) for p in parsed.problems] == [
        (4, "expected"), (5, "type"), (6, "value")]


def test_limits_d_order_is_c_locale_and_conf_only() -> None:
    """limits.conf first, then only *.conf from limits.d in byte order."""
    order = limits.ordered_files("/l.conf", ["/d/b.conf", "/d/README", "/d/A.conf", "/d/a.conf"])
    assert order == ["/l.conf", "/d/A.conf", "/d/a.conf", "/d/b.conf"]


def test_unit_parsing_comments_continuations_sections() -> None:
    """`#`/`;` comments, backslash continuation, and the section each key is in."""
    text = "[Unit]\nDescription=x \\\n  more\n# LimitNOFILE=1\n[Service]\n; LimitNOFILE=2\n" \
           "LimitNOFILE=3\nnot an assignment\n"
    found, problems = systemd.parse_unit(text, "u")
    assert [(a.section, a.key, a.value) for a in found] == [
        ("Unit", "Description", "x more"), ("Service", "LimitNOFILE", "3")]
    assert found[1].line == 7
    assert [p.line for p in problems] == [8]


def test_unit_last_assignment_wins_and_empty_resets() -> None:
    """An empty `LimitNOFILE=` resets what came before it."""
    first, _ = systemd.parse_unit("[Service]\nLimitNOFILE=10\n", "a")
    reset, _ = systemd.parse_unit("[Service]\nLimitNOFILE=\n", "b")
    later, _ = systemd.parse_unit("[Service]\nLimitNOFILE=30\n", "c")
    assert systemd.last_setting(first + reset, "Service", "LimitNOFILE") is None
    setting = systemd.last_setting(first + reset + later, "Service", "LimitNOFILE")
    assert setting is not None and setting.where == "c:2"


@pytest.mark.parametrize(("text", "soft", "hard"), [
    ("1000000", 1000000, 1000000), ("1024:524288", 1024, 524288), ("infinity", None, None),
    ("4096:infinity", 4096, None),
])
def test_rlimit_values(text: str, soft: int | None, hard: int | None) -> None:
    """LimitNOFILE= takes N, soft:hard and infinity."""
    assert systemd.parse_rlimit(text) == systemd.RLimit(soft, hard)


@pytest.mark.parametrize("text", ["lots", "10:5", "1K", ""])
def test_rlimit_rejects(text: str) -> None:
    """Anything else is refused with a reason."""
    with pytest.raises(ValueError, match=r"."):
        systemd.parse_rlimit(text)


def test_dropin_directories_and_precedence() -> None:
    """UNIT.d, prefix and type-wide dirs; a same-named file in /etc hides /lib's; name order."""
    assert systemd.dropin_dir_names("mongoose-im.service") == [
        "mongoose-im.service.d", "mongoose-.service.d", "service.d"]
    assert systemd.dropin_dir_names("m@1.service") == ["m@1.service.d", "m@.service.d",
                                                       "service.d"]
    order = systemd.order_dropins([
        ("/etc/systemd/system/m.service.d", "10-a.conf"),
        ("/etc/systemd/system/m.service.d", "notes.txt"),
        ("/lib/systemd/system/m.service.d", "10-a.conf"),
        ("/lib/systemd/system/m.service.d", "05-b.conf"),
    ])
    assert order == ["/lib/systemd/system/m.service.d/05-b.conf",
                     "/etc/systemd/system/m.service.d/10-a.conf"]


@pytest.mark.parametrize(("cgroup", "unit"), [
    ("0::/system.slice/mongooseim.service\n", "mongooseim.service"),
    ("12:pids:/\n1:name=systemd:/system.slice/mongooseim.service\n0::/\n", "mongooseim.service"),
    ("0::/user.slice/user-1000.slice/session-3.scope\n", None),
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service\n", None),
    ("0::/\n", None),
    ("garbage", None),
])
def test_unit_from_cgroup(cgroup: str, unit: str | None) -> None:
    """A system service is named; a login session or no systemd is None."""
    assert systemd.unit_from_cgroup(cgroup) == unit


def test_pam_lines_includes_and_dash() -> None:
    """`-session`, bracket controls, includes, comments; pam_limits found by module name."""
    parsed = pam.parse_pam(
        "@include common-foo\nsession [success=1 default=ignore] pam_succeed_if.so quiet\n"
        "# session required pam_limits.so\nsession include system-auth\n"
        "-session optional /lib/security/pam_limits.so\n")
    assert parsed.includes == ("common-foo", "system-auth")
    found = pam.has_pam_limits(parsed)
    assert found is not None and found.line == 5
    assert pam.has_pam_limits(pam.parse_pam("auth required pam_limits.so\n")) is None


def test_sysctl_later_wins_and_keys_normalized() -> None:
    """`/` or `.` keys, `-` prefix, `;`/`#` comments; the later assignment wins."""
    values = sysctl.merge(sysctl.parse_sysctl("fs/nr_open=10\n; x=1\n", "a")
                          + sysctl.parse_sysctl("-fs.nr_open = 20\n# y=2\n", "b"))
    assert values["fs.nr_open"].value == "20" and values["fs.nr_open"].where == "b:1"
    assert sysctl.parse_port_range("32768\t60999\n") == (32768, 60999)
    with pytest.raises(ValueError, match="above"):
        sysctl.parse_port_range("9 1")


def test_passwd_and_groups() -> None:
    """Primary group and member lists; malformed and comment lines skipped."""
    users = accounts.parse_passwd("#c\nm:x:999:999::/var/lib/m:/bin/false\nbad:x:y:1::/:\n")
    groups = accounts.parse_group("m:x:999:\nxmpp:x:1001:a,m\nother:x:5:a\n#x:x:1:m\n")
    assert users == [accounts.User("m", 999, 999, "/var/lib/m")]
    assert [g.name for g in accounts.groups_of(users[0], groups)] == ["m", "xmpp"]


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1111 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 1
   1: 0100007F:C350 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 2
   2: 0100007F:1111 0100007F:D431 01 00000000:00000000 00:00000000 00000000   101        0 3
   3: garbage
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1111 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:1466 00000000000000000000000000000000:0000 0A
"""


def test_proc_net_tcp_listeners() -> None:
    """LISTEN rows only; IPv4 and IPv6 addresses as the kernel prints them (host order)."""
    found = sockets.parse_proc_net_tcp(PROC_NET_TCP, "little")
    assert found == [sockets.Listener("0.0.0.0", 4369), sockets.Listener("127.0.0.1", 50000)]
    assert found[0].all_interfaces and found[1].loopback and not found[1].all_interfaces
    found6 = sockets.parse_proc_net_tcp(PROC_NET_TCP6, "little")
    assert found6 == [sockets.Listener("::", 4369), sockets.Listener("::1", 5222)]


@given(st.text(max_size=400))
def test_parsers_never_crash_on_arbitrary_text(text: str) -> None:
    """Hostile or broken files give problems or nothing, never an exception."""
    limits.parse_limits_conf(text, "f")
    systemd.parse_unit(text, "f")
    systemd.unit_from_cgroup(text)
    pam.parse_pam(text)
    sysctl.parse_sysctl(text, "f")
    accounts.parse_passwd(text)
    accounts.parse_group(text)
    sockets.parse_proc_net_tcp(text)
