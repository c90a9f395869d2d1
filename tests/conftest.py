"""Fixtures shared by the unit and integration suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres_server import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server per test session (each test takes a database of its own)."""
    server = PostgresServer()
    yield server
    server.stop()
