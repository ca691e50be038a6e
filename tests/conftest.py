"""Test-session settings shared by every test."""

from hypothesis import settings

from tests.support.require import in_ci

# CI replays the same examples every run, so a landing never hinges on a lucky draw;
# local runs keep exploring new ones (and the example database keeps what failed).
settings.register_profile("ci", derandomize=True, print_blob=True)
if in_ci():
    settings.load_profile("ci")
