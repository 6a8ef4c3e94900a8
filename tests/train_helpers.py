"""Helpers for the training tests: a tiny spec, fake CIFAR folders and archives, a local
HTTP server, and running ``resgraph`` in a subprocess."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

# A small CIFAR-style ResNet (option A shortcuts, two stages) on 8x8 inputs: digits at their
# own resolution, so a training step takes milliseconds.
TINY_SPEC = """\
name: Tiny ResNet
input: {channels: 3, size: 8}
num_classes: 10
stem: {layout: cifar, width: 8}
block: basic
shortcut: A
stages:
  - {width: 8, repeats: 2, stride: 1}
  - {width: 16, repeats: 2, stride: 2}
train:
  dataset: digits
  batch_size: 32
  iterations: 12
  eval_every: 4
"""


@pytest.fixture(autouse=True, scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """In-process runs use one compute thread, as the subprocess runs do (run_env).
    A test module that imports it runs its tests under it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_tiny_spec(folder: Path, extra: str = "", name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(TINY_SPEC + extra)
    return path


def cifar_batch(n: int, seed: int, *, protocol: int = 2) -> bytes:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    return pickle.dumps(
        {b"batch_label": b"fake", b"data": data, b"labels": labels}, protocol=protocol
    )


def make_cifar_folder(data_dir: Path, n: int = 20) -> Path:
    """A CIFAR-10 python folder with ``n`` random images per batch file."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(cifar_batch(n, i))
    (folder / "test_batch").write_bytes(cifar_batch(n, 99))
    return folder


def make_cifar_archive(path: Path, n: int = 20, members: dict[str, bytes] | None = None) -> str:
    """A .tar.gz laid out like the official archive; returns its md5."""
    if members is None:
        members = {f"cifar-10-batches-py/data_batch_{i}": cifar_batch(n, i) for i in range(1, 6)}
        members["cifar-10-batches-py/test_batch"] = cifar_batch(n, 99)
        members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": ["a"] * 10})
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess run: one compute thread (tiny models on a shared
    2-core machine run faster without thread hand-offs) and no leftover test hooks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESGRAPH_TEST_")}
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


HOOKS = Path(__file__).resolve().parent / "train_hooks.py"


def resgraph(
    args: list[str], cwd: Path, timeout: float = 240, hooks: list[str] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m resgraph ARGS`` in a subprocess, output captured; with ``hooks`` (e.g.
    ``["signal=SIGKILL@6"]``), through tests/train_hooks.py with those callbacks."""
    entry = [str(HOOKS), *hooks, "--"] if hooks is not None else ["-m", "resgraph"]
    return subprocess.run(
        [sys.executable, *entry, *map(str, args)],
        cwd=cwd,
        env=run_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# A one-channel 8x8 network for image-folder and shard-set tests (the digits' own size).
GREY_TINY_SPEC = """\
name: Grey Tiny
input: {channels: 1, size: 8}
num_classes: 10
stem: {layout: cifar, width: 8}
block: basic
shortcut: A
stages:
  - {width: 8, repeats: 1, stride: 1}
  - {width: 16, repeats: 1, stride: 2}
train:
  batch_size: 32
  iterations: 300
  eval_every: 300
  flip: false
"""
