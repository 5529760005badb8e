"""A real HTTP server in a thread that records every API call and answers through a handler.

The platform-action tests run Chatwoot's REST calls (httpx) and the real Twilio SDK
(requests) against it: each request is kept with its method, path, query, headers and
decoded body (JSON or form), and ``fail`` scripts error answers for chosen calls.

``ChatwootConversation`` and ``TaskRouterWorkspace`` are handlers: minimal stateful
stand-ins for the two REST APIs that keep just the state the actions read back (team,
assignee, labels, messages; tasks) and answer in the platforms' documented shapes, so the
real clients parse real responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    """One request the recorder got, and the status it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    # The handler ran: the platform did the work, whatever the answer said.
    handled: bool = False

    @property
    def json(self) -> Any:
        """The body as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, list[str]]:
        """The body as an ``application/x-www-form-urlencoded`` form."""
        return parse_qs(self.body.decode(), keep_blank_values=True)


# handler(call) -> (status, JSON-encodable body)
Handler = Callable[[Call], tuple[int, Any]]


@dataclass
class Failure:
    """Answer ``status`` to the next ``times`` calls of ``method`` on ``path``.

    ``after_handling``: the handler runs first (the platform did the work) and only the
    answer is an error — an answer lost on the way back.
    """

    method: str
    path: str
    status: int
    times: int = 1
    after_handling: bool = False


@dataclass
class Recorder:
    """The server's state: its base ``url``, the ``calls`` so far, scripted ``failures``."""

    url: str
    handler: Handler
    calls: list[Call] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self, method: str, path: str, status: int = 500, *, times: int = 1, after_handling: bool = False
    ) -> None:
        """Script ``status`` for the next ``times`` calls of ``method path``."""
        with self.lock:
            self.failures.append(Failure(method, path, status, times, after_handling))

    def _scripted(self, call: Call) -> Failure | None:
        for failure in self.failures:
            if failure.method == call.method and failure.path == call.path and failure.times > 0:
                failure.times -= 1
                return failure
        return None

    def answer(self, call: Call) -> tuple[int, Any]:
        with self.lock:
            failure = self._scripted(call)
            if failure is not None and not failure.after_handling:
                status, body = failure.status, {"error": "scripted failure"}
            else:
                status, body = self.handler(call)
                call.handled = True
                if failure is not None:
                    status, body = failure.status, {"error": "scripted failure after handling"}
            call.status = status
            self.calls.append(call)
            return status, body

    def matching(self, method: str, path: str | None = None) -> list[Call]:
        """Calls of ``method`` (on ``path``), in order, whatever their answer."""
        with self.lock:
            return [c for c in self.calls if c.method == method and (path is None or c.path == path)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked every 20 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"condition not met in {timeout}s; calls: {[(c.method, c.path) for c in self.calls]}"
        )


@contextlib.contextmanager
def running_recorder(handler: Handler) -> Iterator[Recorder]:
    """Serve ``handler`` on 127.0.0.1 and a free port; stop on exit."""
    holder: dict[str, Recorder] = {}

    class RequestHandler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            call = Call(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            status, answer = holder["r"].answer(call)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    server.daemon_threads = True
    holder["r"] = Recorder(url=f"http://127.0.0.1:{server.server_address[1]}", handler=handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- platform stand-ins ---------------------------------------------------------------------------

_EXPRESSION = re.compile(r'^(\w+) == "([^"]*)"$')


@dataclass
class ChatwootConversation:
    """One Chatwoot conversation (display id ``number`` in account ``account``)."""

    account: int = 1
    number: int = 42
    team: dict[str, Any] | None = None
    assignee: dict[str, Any] | None = None
    labels: list[str] = field(default_factory=lambda: ["vip"])
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"/api/v1/accounts/{self.account}/conversations/{self.number}"

    def __call__(self, call: Call) -> tuple[int, Any]:
        if call.headers.get("api_access_token") != "cw-token":
            return 401, {"error": "You need to sign in or sign up before continuing."}
        if call.path == self.base and call.method == "GET":
            meta = {"sender": {"id": 9}, "assignee": self.assignee, "team": self.team}
            return 200, {"id": self.number, "meta": meta, "labels": self.labels, "status": "open"}
        if call.path == self.base + "/assignments" and call.method == "POST":
            body = call.json
            if "assignee_id" in body:
                self.assignee = {"id": body["assignee_id"], "name": "Agent"}
                return 200, self.assignee
            self.team = {"id": body["team_id"], "name": "Team"}
            return 200, self.team
        if call.path == self.base + "/labels":
            if call.method == "POST":
                self.labels = list(call.json["labels"])
            return 200, {"payload": self.labels}
        if call.path == self.base + "/messages":
            if call.method == "POST":
                message = {"id": len(self.messages) + 1, **call.json}
                self.messages.append(message)
                return 200, message
            return 200, {"meta": {}, "payload": self.messages[-20:]}
        return 404, {"error": "not found"}


@dataclass
class TaskRouterWorkspace:
    """TaskRouter's Tasks list/create/update of workspace ``sid``."""

    sid: str = "WS0123456789abcdef0123456789abcdef"
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"/v1/Workspaces/{self.sid}/Tasks"

    def _task(self, sid: str) -> dict[str, Any] | None:
        return next((task for task in self.tasks if task["sid"] == sid), None)

    def __call__(self, call: Call) -> tuple[int, Any]:
        if not call.headers.get("authorization", "").startswith("Basic "):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if call.path == self.base and call.method == "GET":
            found = list(self.tasks)
            for expression in call.query.get("EvaluateTaskAttributes", []):
                match = _EXPRESSION.match(expression)
                assert match, expression  # the only expression shape the actions send
                name, value = match.groups()
                found = [t for t in found if json.loads(t["attributes"]).get(name) == value]
            states = call.query.get("AssignmentStatus")
            if states:
                found = [t for t in found if t["assignment_status"] in states]
            size = int(call.query.get("PageSize", ["50"])[0])
            meta = {
                "key": "tasks",
                "page": 0,
                "page_size": size,
                "next_page_url": None,
                "previous_page_url": None,
            }
            return 200, {"tasks": found[:size], "meta": meta}
        if call.path == self.base and call.method == "POST":
            form = {key: values[0] for key, values in call.form.items()}
            task: dict[str, Any] = {
                "sid": f"WT{len(self.tasks):032x}",
                "workspace_sid": self.sid,
                "workflow_sid": form.get("WorkflowSid"),
                "attributes": form.get("Attributes", "{}"),
                "priority": int(form.get("Priority", "0")),
                "task_channel_unique_name": form.get("TaskChannel", "default"),
                "assignment_status": "pending",
            }
            self.tasks.append(task)
            return 201, task
        if call.path.startswith(self.base + "/") and call.method == "POST":
            existing = self._task(call.path.rsplit("/", 1)[1])
            if existing is None:
                return 404, {"code": 20404, "message": "not found", "status": 404}
            form = {key: values[0] for key, values in call.form.items()}
            if "Attributes" in form:
                existing["attributes"] = form["Attributes"]
            if "Priority" in form:
                existing["priority"] = int(form["Priority"])
            return 200, existing
        return 404, {"code": 20404, "message": "not found", "status": 404}
