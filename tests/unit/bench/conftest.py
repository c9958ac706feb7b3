"""Fixtures of the bench tests: the stand-in OpenAI server (a real HTTP server, not an engine) and settings."""

from __future__ import annotations

import socket

import pytest

from tests.unit.bench.standin_openai import StandinServer


@pytest.fixture
def standin():
    """standin(**behaviour) -> a started StandinServer, stopped after the test."""
    servers: list[StandinServer] = []

    def start(**behaviour) -> StandinServer:
        server = StandinServer(**behaviour).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def settings():
    """settings(**overrides) -> a small, fast BenchSection."""
    from orchestrator.recipe.bench import BenchSection

    def make(**overrides) -> BenchSection:
        values = dict(concurrency=[1, 2], input_len=16, output_len=12, requests_per_level=4, warmup=1,
                      request_timeout_s=10, budget_s=60)
        values.update(overrides)
        return BenchSection(**values)

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
