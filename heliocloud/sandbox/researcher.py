"""A researcher at the sandbox hub, scripted over HTTP, as the hub tests and benchmarks use it:
sign in through the hosted sign-in, spawn a server with a profile from the spawn form, and run
code in a kernel of that server through its kernel API (REST to start the kernel, the Jupyter
messaging protocol over its WebSocket: what JupyterLab itself does)."""
from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urljoin

import requests
import websocket


def sign_in(hub_url: str, email: str, password: str) -> requests.Session:
    """GenericOAuthenticator's flow: hub → hosted sign-in form → code → hub callback → cookie."""
    session = requests.Session()
    form = session.get(f"{hub_url}/hub/oauth_login", timeout=30)
    form.raise_for_status()
    action = re.search(r'<form method="post" action="([^"]+)"', form.text).group(1).replace("&amp;", "&")
    landed = session.post(urljoin(form.url, action), data={"email": email, "password": password}, timeout=60)
    if landed.status_code != 200 or not landed.url.startswith(hub_url):
        raise PermissionError(f"sign-in of {email} ended at {landed.url} ({landed.status_code})")
    return session


def profiles_offered(session: requests.Session, hub_url: str) -> list[str]:
    page = session.get(f"{hub_url}/hub/spawn", timeout=30)
    return re.findall(r'name="profile" value="([^"]+)"', page.text)


def spawn(session: requests.Session, hub_url: str, user: str, profile: str, *, timeout: float = 180) -> float:
    """Submit the spawn form with `profile`; wait until the server is ready. Returns seconds."""
    began = time.monotonic()
    response = session.post(f"{hub_url}/hub/spawn/{quote(user)}",
                            data={"profile": profile, "_xsrf": session.cookies.get("_xsrf")}, timeout=60)
    response.raise_for_status()
    while time.monotonic() - began < timeout:
        progress = session.get(f"{hub_url}/hub/api/users/{quote(user)}/server/progress", timeout=30,
                               headers={"X-XSRFToken": session.cookies.get("_xsrf") or ""}, stream=True)
        for line in progress.iter_lines():
            if line.startswith(b"data:"):
                event = json.loads(line[5:])
                if event.get("ready"):
                    return time.monotonic() - began
                if event.get("failed"):
                    raise RuntimeError(f"spawn of {user} failed: {event.get('message')}")
        time.sleep(0.5)
    raise TimeoutError(f"server of {user} not ready after {timeout:.0f} s")


class Kernel:
    """``with Kernel(server_url, token) as k: k.run("1 + 1")``: one kernel of a notebook server."""

    def __init__(self, server_url: str, token: str, *, name: str = "python3"):
        self.server_url, self.token, self.name = server_url.rstrip("/"), token, name
        self.session = uuid.uuid4().hex
        self.id: str | None = None
        self.ws: websocket.WebSocket | None = None

    def _api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.server_url}/api{path}", timeout=60,
                                headers={"Authorization": f"token {self.token}"}, **kwargs)

    def __enter__(self) -> "Kernel":
        response = self._api("POST", "/kernels", json={"name": self.name})
        response.raise_for_status()
        self.id = response.json()["id"]
        ws_url = self.server_url.replace("http", "ws", 1) + f"/api/kernels/{self.id}/channels?session_id={self.session}"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {self.token}"], timeout=600)
        return self

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.id:
            self._api("DELETE", f"/kernels/{self.id}")

    def run(self, code: str, *, timeout: float = 600) -> list[dict]:
        """Execute `code`; returns its iopub outputs; raises RuntimeError on an error reply."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": self.session,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        outputs, reply, idle = [], None, False
        deadline = time.monotonic() + timeout
        while not (reply and idle):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply in {timeout:.0f} s to: {code[:80]!r}")
            message = json.loads(self.ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            if message["channel"] == "shell" and kind == "execute_reply":
                reply = message["content"]
            elif kind == "status":
                idle = message["content"]["execution_state"] == "idle"
            elif kind in ("stream", "execute_result", "display_data", "error"):
                outputs.append({"type": kind, **message["content"]})
        if reply["status"] != "ok":
            raise RuntimeError(f"{reply.get('ename')}: {reply.get('evalue')}\n" + "\n".join(reply.get("traceback", [])))
        return outputs

    def value(self, expression: str):
        """A JSON-able value from the kernel."""
        outputs = self.run(f"import json as _json; print(_json.dumps({expression}))")
        return json.loads("".join(o["text"] for o in outputs if o["type"] == "stream" and o["name"] == "stdout"))


def notebook_cells(path: Path) -> list[str]:
    """The code cells of a notebook, as the kernel receives them."""
    document = json.loads(Path(path).read_text())
    return ["".join(cell["source"]) for cell in document["cells"] if cell["cell_type"] == "code"]


def run_notebook(kernel: Kernel, path: Path) -> list[list[dict]]:
    """Every code cell, in order, unchanged; the first error stops it (as nbclient does)."""
    return [kernel.run(cell) for cell in notebook_cells(path)]
