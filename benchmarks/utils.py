"""Helpers the benchmarks share: a free port, a process's CPU time, and gradio clients that cost what a
browser costs."""

from __future__ import annotations

import functools
import os
import socket
import ssl
from pathlib import Path

import certifi


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None where that is unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# gradio_client sends every request through httpx's module-level functions, and each of those builds a new TLS
# context from the CA bundle, even for plain http. Simulated students share the cores with the server, so that
# cost would be measured as the server's slowness. One context, verified against the same bundle httpx uses by
# default, is built once per process (on first use, so `--help` stays quick) and handed to every client.
@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def api_client(url: str, **kwargs):
    """A gradio_client.Client for `url` that reuses one verified TLS context; kwargs go to Client."""
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=shared_tls_context(), **kwargs)
