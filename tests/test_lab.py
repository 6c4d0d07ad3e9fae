"""`make lab` for students: a real Jupyter server on loopback, started by the Makefile's own
target, opens a chapter's MyST source as a notebook through its contents API (jupytext), runs it
in a kernel of that server (quick mode), and the outputs come back; JupyterLab opens a chapter's
.md as a notebook by default; and the server is gone when stopped."""
import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest
import requests
import websocket

import helpers
from helpers import subprocess_env

pytestmark = pytest.mark.slow

TOKEN = uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab():
    port = free_port()
    args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} "
            f"--ServerApp.port_retries=0 --IdentityProvider.token={TOKEN}")
    server = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=helpers.ROOT,
                              env={**subprocess_env(), "ASYNCRL_QUICK": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if requests.get(f"{url}/api/status", headers=auth(), timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        if server.poll() is not None or time.time() > deadline:
            os.killpg(server.pid, signal.SIGKILL)
            pytest.fail(f"the server did not start: {server.stdout.read().decode()[-3000:]}")
        time.sleep(0.5)
    yield url, server
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def auth():
    return {"Authorization": f"token {TOKEN}"}


def run_cells(url, kernel_id, sources, timeout=120):
    """Execute each source in the kernel, in order, over the kernel's websocket; return each
    one's outputs as Jupyter messages' contents (msg_type, content)."""
    ws = websocket.create_connection(
        f"{url.replace('http', 'ws')}/api/kernels/{kernel_id}/channels?token={TOKEN}",
        timeout=timeout)
    outputs = []
    try:
        for source in sources:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                           "session": uuid.uuid4().hex, "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": source, "silent": False, "store_history": True,
                            "user_expressions": {}, "allow_stdin": False}}))
            cell = []
            while True:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind in ("stream", "display_data", "execute_result", "error"):
                    cell.append((kind, msg["content"]))
                if kind == "status" and msg["content"]["execution_state"] == "idle":
                    break
            outputs.append(cell)
    finally:
        ws.close()
    return outputs


def test_a_chapter_opens_as_a_notebook_and_runs_in_the_servers_kernel(lab):
    url, _ = lab
    model = requests.get(f"{url}/api/contents/preface.md", params={"type": "notebook"},
                         headers=auth(), timeout=30).json()
    assert model["type"] == "notebook", model
    code = [c["source"] for c in model["content"]["cells"] if c["cell_type"] == "code"]
    assert code and any("import asyncrl_lab as lab" in c for c in code)
    session = requests.post(f"{url}/api/sessions", headers=auth(), timeout=60, json={
        "path": "preface.md", "type": "notebook", "name": "", "kernel": {"name": "python3"}}).json()
    try:
        outputs = run_cells(url, session["kernel"]["id"], code)
    finally:
        requests.delete(f"{url}/api/sessions/{session['id']}", headers=auth(), timeout=30)
    errors = [content for cell in outputs for kind, content in cell if kind == "error"]
    assert not errors, errors
    text = "".join(content.get("text", "") for cell in outputs for kind, content in cell
                   if kind == "stream")
    assert "quick mode: True" in text  # the kernel runs with the server's environment
    assert any("image/png" in content.get("data", {}) for cell in outputs
               for kind, content in cell if kind in ("display_data", "execute_result"))


def test_jupyterlab_opens_a_chapter_as_a_notebook_by_default(lab):
    url, _ = lab
    settings = requests.get(f"{url}/lab/api/settings/@jupyterlab/docmanager-extension:plugin",
                            headers=auth(), timeout=30).json()
    # the overrides `make lab` installs become the settings' defaults
    viewers = settings["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers["markdown"] == "Jupytext Notebook" == viewers["myst"]
    assert requests.get(f"{url}/lab", headers=auth(), timeout=30).ok


def test_stopping_the_server_leaves_no_process(lab):
    _, server = lab
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    pytest.fail("processes of the server's group are still alive after it stopped")
