"""`make lab` really serves the notebooks: the Makefile's own command line, run headless, as root too."""
import datetime as dt
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lab_command(port: int, token: str) -> list[str]:
    """The command `make lab` runs (read with `make -n`, so nothing is installed), made headless."""
    extra = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --ServerApp.port_retries=0 --ServerApp.token={token}"
    dry = subprocess.run(["make", "-n", "lab", f"LAB_ARGS={extra}"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    [line] = [line for line in dry.stdout.splitlines() if "jupyter lab" in line]
    return shlex.split(line)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running JupyterLab on 127.0.0.1 (base URL, token), stopped at the end whatever happens."""
    port, token = _free_port(), secrets.token_hex(16)
    command = _lab_command(port, token)
    if os.getuid() == 0:
        assert "--allow-root" in command  # without it Jupyter refuses to start as root
    home = tmp_path_factory.mktemp("jupyter")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    log = open(home / "server.log", "w+")
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base, token, log)
        yield base, token
    finally:
        _stop(proc)
        log.close()


def _wait_until_up(proc, base: str, token: str, log) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            if requests.get(f"{base}/api/status", headers=_auth(token), timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    log.seek(0)
    pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT_S} s:\n{log.read()[-3000:]}")


def _stop(proc) -> None:
    """SIGTERM shuts the server down (and its kernels); SIGKILL the group if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _auth(token: str) -> dict:
    return {"Authorization": f"token {token}"}


def _listing(base: str, token: str, path: str = "") -> set[str]:
    listing = requests.get(f"{base}/api/contents/{path}", headers=_auth(token), timeout=30)
    assert listing.status_code == 200, (path, listing.text)
    return {item["name"] for item in listing.json()["content"]}


def test_lab_reaches_the_readme_the_notebooks_and_the_outputs(lab):
    """The file browser starts at the repository root: what the notebooks' text points to is in reach."""
    base, token = lab
    assert {"README.md", "notebooks", "outputs"} <= _listing(base, token)
    numbered = sorted(n for n in _listing(base, token, "notebooks") if re.fullmatch(r"\d\d_\w+\.ipynb", n))
    expected = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert numbered == expected and len(numbered) >= 7 and numbered[0] == "00_blurb_tour.ipynb"
    assert "REPORT.md" in _listing(base, token, "outputs")
    report = requests.get(f"{base}/api/contents/outputs/REPORT.md", headers=_auth(token), timeout=30)
    assert report.status_code == 200 and report.json()["content"].startswith("# Reproduction report")


def test_lab_kernel_runs_a_cell_in_the_project_environment(lab):
    base, token = lab
    started = requests.post(f"{base}/api/kernels", headers=_auth(token), json={"name": "python3"}, timeout=60)
    assert started.status_code == 201, started.text
    kernel = started.json()["id"]
    try:
        out = _execute(base, token, kernel, "import sys, blurblib\nprint(6 * 7, sys.prefix)")
    finally:
        deleted = requests.delete(f"{base}/api/kernels/{kernel}", headers=_auth(token), timeout=30)
    assert out.split()[0] == "42"
    assert Path(out.split()[1]).resolve() == Path(sys.prefix).resolve()  # the kernel runs the project's .venv
    assert deleted.status_code == 204
    assert kernel not in {k["id"] for k in requests.get(f"{base}/api/kernels", headers=_auth(token), timeout=30).json()}


def _execute(base: str, token: str, kernel: str, code: str, timeout_s: float = 90) -> str:
    """Run `code` over the kernel's websocket (Jupyter messaging protocol); its stdout."""
    url = f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel}/channels?token={token}"
    ws = websocket.create_connection(url, timeout=timeout_s)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps(_execute_request(msg_id, code)))
        return _collect_stdout(ws, msg_id, time.monotonic() + timeout_s)
    finally:
        ws.close()


def _execute_request(msg_id: str, code: str) -> dict:
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
              "version": "5.3", "date": dt.datetime.now(dt.timezone.utc).isoformat()}
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False,
               "stop_on_error": True}
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []}


def _collect_stdout(ws, msg_id: str, deadline: float) -> str:
    stdout, errors = [], []
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream" and msg["content"]["name"] == "stdout":
            stdout.append(msg["content"]["text"])
        elif kind == "error":
            errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            assert not errors, errors
            return "".join(stdout)
    pytest.fail(f"the kernel did not finish the cell in time; stdout so far: {''.join(stdout)!r}")
