"""The probes' toy store, shared with the head tests."""

from tests.probes.conftest import toy_store  # noqa: F401  (a fixture)
