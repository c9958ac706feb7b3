"""One streamed OpenAI request, and the probe that finds how to talk to a server.

Servers differ in two ways that matter to a benchmark: which API they expose
(/v1/completions or only /v1/chat/completions — transformers serve 4.57 has only
the latter) and how they can be told to produce exactly N tokens. Both are data
below and settled once by `probe`, whose requests are never counted.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from orchestrator.errors import StageFailed, UserError

API_PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}


@dataclass(frozen=True)
class FixedLength:
    """One way to ask a server for exactly `n` output tokens (extra request-body fields)."""

    name: str
    description: str
    fields: Callable[[int], dict[str, Any]]


# Tried in order by the probe; a 400/422 (unknown field) moves to the next one.
FIXED_LENGTH_METHODS: tuple[FixedLength, ...] = (
    FixedLength("ignore_eos", "ignore_eos + min_tokens (vLLM / TensorRT-LLM request extensions)",
                lambda n: {"ignore_eos": True, "min_tokens": n, "stream_options": {"include_usage": True}}),
    # transformers serve rejects unknown keys with 422 but accepts a serialized GenerationConfig.
    FixedLength("generation_config", "generation_config {min_new_tokens, max_new_tokens} (transformers serve)",
                lambda n: {"generation_config": json.dumps({"min_new_tokens": n, "max_new_tokens": n})}),
    FixedLength("max_tokens_only", "max_tokens only: the server may stop early at EOS (output counted anyway)",
                lambda n: {}),
)
_BY_NAME = {m.name: m for m in FIXED_LENGTH_METHODS}

# Error kinds that mean "the connection broke", after which we ask whether the server is still there.
CONNECTION_ERRORS = frozenset({"connect", "disconnected"})


@dataclass
class RequestResult:
    """What one request measured. Times are seconds; `started` is a perf_counter stamp."""

    started: float
    ok: bool = False
    error: str | None = None  # kind: timeout | connect | disconnected | http <code> | server error | empty output | cancelled
    detail: str = ""
    status: int | None = None
    ttft_s: float | None = None
    e2e_s: float = 0.0
    chunk_times: list[float] = field(default_factory=list)  # offsets from `started` of text chunks
    text: str = ""
    prompt_tokens: int | None = None
    output_tokens: int = 0
    server_output_tokens: int | None = None  # usage.completion_tokens, when the server reports it


@dataclass(frozen=True)
class Endpoint:
    """How to talk to the server under test, as settled by `probe`."""

    base_url: str
    api: str  # completions | chat
    model: str
    fixed_length: FixedLength

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + API_PATHS[self.api]

    def body(self, prompt: str, output_len: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": output_len, "stream": True, "temperature": 0}
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        body.update(self.fixed_length.fields(output_len))
        return body


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--url {url!r} is not an http(s) URL", hint="e.g. --url http://127.0.0.1:8000")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def is_listening(url: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    host, port = host_port(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def make_client(url: str, request_timeout_s: float):
    """The shared httpx client; proxies from the environment are ignored for loopback servers."""
    import httpx

    host, _ = host_port(url)
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    return httpx.AsyncClient(
        timeout=httpx.Timeout(request_timeout_s, connect=min(10.0, request_timeout_s)),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        trust_env=not loopback,
    )


async def send(client, endpoint: Endpoint, prompt: str, output_len: int, timeout_s: float) -> RequestResult:
    """Send one streaming request; never raises for server trouble — the result says what happened."""
    result = RequestResult(started=time.perf_counter())
    try:
        await asyncio.wait_for(_stream(client, endpoint, prompt, output_len, result), timeout_s)
    except asyncio.TimeoutError:
        result.error, result.detail = "timeout", f"no complete answer within {timeout_s:g} s"
    except Exception as exc:  # noqa: BLE001 - every failure is counted, by kind
        detail = str(exc) if isinstance(exc, _ServerError) else f"{type(exc).__name__}: {exc}"
        result.error, result.detail = _classify(exc), detail[:300]
    finally:
        result.e2e_s = time.perf_counter() - result.started
    if result.error is None:
        if result.text:
            result.ok = True
        else:
            result.error, result.detail = "empty output", "the stream ended without any text"
    return result


def _classify(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "disconnected"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, _ServerError):
        return exc.kind
    return "client error"


class _ServerError(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.kind, self.status = kind, status


async def _stream(client, endpoint: Endpoint, prompt: str, output_len: int, result: RequestResult) -> None:
    async with client.stream("POST", endpoint.url, json=endpoint.body(prompt, output_len)) as response:
        result.status = response.status_code
        if response.status_code != 200:
            body = (await response.aread()).decode("utf-8", "replace")
            raise _ServerError(f"http {response.status_code}", body.strip()[:300], response.status_code)
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            try:
                event = json.loads(payload)
            except json.JSONDecodeError:
                raise _ServerError("server error", f"not JSON in the stream: {payload[:200]}") from None
            if "error" in event:
                raise _ServerError("server error", json.dumps(event["error"])[:300])
            for choice in event.get("choices") or []:
                text = choice.get("text") if endpoint.api == "completions" else (choice.get("delta") or {}).get("content")
                if text:
                    offset = time.perf_counter() - result.started
                    if result.ttft_s is None:
                        result.ttft_s = offset
                    result.chunk_times.append(offset)
                    result.text += text
            usage = event.get("usage")
            if usage and usage.get("completion_tokens") is not None:
                result.server_output_tokens = int(usage["completion_tokens"])


async def probe(client, base_url: str, model: str, prompt: str, output_len: int, timeout_s: float,
                api: str = "auto", fixed_length: str | None = None) -> tuple[Endpoint, list[str]]:
    """Find the API and fixed-length method the server accepts; return them with the log of attempts.

    404/405 moves to the next API, 400/422 to the next fixed-length method. Also loads a lazily
    loaded model (transformers serve loads on the first request), which is why it is never counted.
    """
    apis = list(API_PATHS) if api == "auto" else [api]
    methods = [_BY_NAME[fixed_length]] if fixed_length else list(FIXED_LENGTH_METHODS)
    attempts: list[str] = []
    for api_name in apis:
        for method in methods:
            endpoint = Endpoint(base_url, api_name, model, method)
            result = await send(client, endpoint, prompt, output_len, timeout_s)
            attempts.append(f"POST {API_PATHS[api_name]} with {method.name}: "
                            + ("ok" if result.ok else f"{result.error} {result.detail}"[:200]))
            if result.ok:
                return endpoint, attempts
            if result.status in (404, 405):
                break
            if result.status in (400, 422):
                continue
            if result.error in CONNECTION_ERRORS:
                raise StageFailed(f"the server at {base_url} dropped the probe request: {result.detail}",
                                  log_tail=attempts)
            raise StageFailed(f"the probe request to {endpoint.url} failed: {result.error}: {result.detail}",
                              log_tail=attempts, hint="check the server log; raise bench.request_timeout_s "
                              "if the model is still loading")
    raise UserError(f"{base_url} accepted no OpenAI streaming request ({'; '.join(API_PATHS[a] for a in apis)})",
                    details=attempts, hint="is this an OpenAI-compatible server? try --api chat or --api completions")
