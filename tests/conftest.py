"""Test-session settings shared by every test."""

from hypothesis import settings

from tests.support.require import in_ci

# CI replays the same examples every run, so a landing never hinges on a lucky draw;
# local runs keep exploring new ones (and the example database keeps what failed).
# No per-example deadline under CI: on a loaded 2-core machine one slow example (a GC pause,
# a descheduled process) is not a failure of the code under test, and a property test that
# fails on timing alone is a flake; each test still has its max_examples bound.
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
if in_ci():
    settings.load_profile("ci")
