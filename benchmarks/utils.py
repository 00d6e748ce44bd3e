"""Helpers the benchmarks share: a free port, a process's CPU time, what the CPU computes with, and gradio
clients that cost what a browser costs."""

from __future__ import annotations

import functools
import os
import socket
import ssl
from pathlib import Path

import certifi
import torch

from pathgen.cpu import has_fast_bf16

# oneDNN's and ATen's own switches that cap the instruction set they use. Set both to AVX2 on a newer CPU to
# estimate an AVX2-only one (same cores and clock, older kernels); a figure measured so must say it was.
ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


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


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), or None."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)


def cpu_description() -> dict:
    """What a timing was measured on: the CPU, the kernels torch picked, native bf16, and any instruction-set cap."""
    return {"cpu_model": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": has_fast_bf16(), "isa_limits": {name: os.environ[name] for name in ISA_LIMITS
                                                           if name in os.environ}}


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
