"""Real forking programs no one here wrote: gunicorn's sync workers and
celery's prefork pool, each under the emulation, without objcprefork (the
workers die) and under `objcprefork run` (every request succeeds)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import clean_environment, no_core_files

SERVERS = ("gunicorn==27.0.1", "celery==5.7.0")


@pytest.fixture(scope="session")
def server_venv(venv):
    """The wheel's venv, plus gunicorn and celery from PyPI, pinned: a new
    release must not change what these tests show without a commit saying so."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv.python), "install", "-q",
                    *SERVERS], check=True)
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(argv: list[object], cwd: Path, port: int):
    server = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=clean_environment(cwd),
                              preexec_fn=no_core_files, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"server did not start: {server.communicate()[0]}")
            time.sleep(0.1)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def requests(port: int, count: int) -> list[str]:
    """GET / count times; each result is the body or the error."""
    results = []
    for _ in range(count):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
                results.append(reply.read().decode())
        except (urllib.error.URLError, OSError) as exc:
            results.append(f"error: {exc}")
    return results


APP = """
    # The workers touch Objective-C classes on their first request.
    from forkprobe import *
    load(); make_threaded()  # in the master with --preload; again harmless in a worker
    def app(environ, start_response):
        touch("FXAlpha", "FXBeta")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
"""
CONF = """
    # Read by the master before it forks: it loads the classes and uses a thread.
    from forkprobe import *
    load(); make_threaded()
    workers = 2
    worker_class = "sync"
    timeout = 20
"""


@pytest.mark.parametrize("preload", [False, True])
def test_gunicorn(server_venv, fixtures, tmp_path, preload):
    (tmp_path / "fxapp.py").write_text(textwrap.dedent(APP))
    (tmp_path / "gunicorn_conf.py").write_text(textwrap.dedent(CONF))
    port = free_port()
    gunicorn = [server_venv.bin / "gunicorn", "-c", "gunicorn_conf.py",
                "-b", f"127.0.0.1:{port}", *(["--preload"] if preload else []), "fxapp:app"]
    with serving(gunicorn, tmp_path, port) as server:
        without = requests(port, 6)
    log = server.stdout.read() if server.stdout else ""
    assert all(r.startswith("error") for r in without), without
    assert "+[FXAlpha initialize] may have been in progress" in log

    port = free_port()
    launcher = [server_venv.bin / "objcprefork", "run", "--no-defaults", "--classes",
                "FXAlpha,FXBeta", "--"]
    gunicorn[4] = f"127.0.0.1:{port}"
    with serving([*launcher, *gunicorn], tmp_path, port) as server:
        protected = requests(port, 20)
    assert protected == ["ok"] * 20, server.stdout.read() if server.stdout else ""


TASKS = """
    # A celery app on the filesystem transport: no broker server needed.
    import os
    from celery import Celery
    from forkprobe import *
    load(); make_threaded()  # in the worker's main process, before the pool forks
    here = os.path.dirname(os.path.abspath(__file__))
    app = Celery("fxtasks", broker="filesystem://", backend=f"file://{here}/results")
    app.conf.broker_transport_options = {
        "data_folder_in": f"{here}/queue", "data_folder_out": f"{here}/queue",
        "data_folder_processed": f"{here}/processed"}
    app.conf.worker_prefetch_multiplier = 1

    @app.task
    def use_classes():
        touch("FXAlpha", "FXBeta")
        return "ok"
"""
CLIENT = """
import json, sys
from fxtasks import use_classes
results = []
for _ in range(int(sys.argv[1])):  # a lost worker costs celery seconds: few when unprotected
    try:
        results.append(use_classes.delay().get(timeout=30))
    except Exception as exc:
        results.append(f"error: {type(exc).__name__}: {exc}")
print(json.dumps(results))
"""


@pytest.mark.parametrize("protected", [False, True])
def test_celery_prefork_pool(server_venv, fixtures, tmp_path, protected):
    (tmp_path / "fxtasks.py").write_text(textwrap.dedent(TASKS))
    for folder in ("queue", "processed", "results"):
        (tmp_path / folder).mkdir()
    launcher = [server_venv.bin / "objcprefork", "run", "--no-defaults", "--classes",
                "FXAlpha,FXBeta", "--"] if protected else []
    worker = subprocess.Popen(
        [str(a) for a in [*launcher, server_venv.bin / "celery", "-A", "fxtasks", "worker",
                          "--pool=prefork", "--concurrency=2", "--loglevel=info",
                          "--without-heartbeat", "--without-mingle", "--without-gossip"]],
        cwd=tmp_path, env=clean_environment(tmp_path), preexec_fn=no_core_files,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = subprocess.run([str(server_venv.python), "-c", CLIENT, "4" if protected else "1"],
                                cwd=tmp_path,
                                env=clean_environment(tmp_path), capture_output=True,
                                text=True, timeout=180)
    finally:
        worker.terminate()
        log = worker.communicate(timeout=30)[0]
    assert client.returncode == 0, client.stderr
    results = json.loads(client.stdout)
    if protected:
        assert results == ["ok"] * 4, log
    else:
        assert len(results) == 1 and all("WorkerLostError" in r for r in results), (results, log)
        assert "+[FXAlpha initialize] may have been in progress" in log
