"""Secret files handed over by systemd's LoadCredential= are found under $CREDENTIALS_DIRECTORY."""

from pathlib import Path

from mongooseim_agent.credentials import credential_path

ENV = {"CREDENTIALS_DIRECTORY": "/run/credentials/mongooseim-agent.service"}


def test_variable_and_bare_names_resolve_into_the_credentials_directory() -> None:
    """`$CREDENTIALS_DIRECTORY/x`, `${CREDENTIALS_DIRECTORY}/x` and `x` all mean the same file."""
    expected = Path("/run/credentials/mongooseim-agent.service/graphql-password")
    for written in ("$CREDENTIALS_DIRECTORY/graphql-password",
                    "${CREDENTIALS_DIRECTORY}/graphql-password", "graphql-password"):
        assert credential_path(Path(written), ENV) == expected


def test_absolute_paths_and_no_systemd_leave_the_path_alone() -> None:
    """Outside systemd, or for an absolute path, the configured path is used as written."""
    assert credential_path(Path("/etc/x/pw"), ENV) == Path("/etc/x/pw")
    assert credential_path(Path("graphql-password"), {}) == Path("graphql-password")
