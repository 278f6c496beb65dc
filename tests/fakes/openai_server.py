"""A fake OpenAI-compatible chat completions server on 127.0.0.1, for the real HTTP provider path.

``POST /v1/chat/completions`` answers what a script decides, as one JSON body or, with
``"stream": true``, as server-sent events (``data: {chunk}`` lines, then ``data: [DONE]``),
the way OpenAI and compatible servers do, including tool calls and usage. Every request body
is recorded (``server.requests``) so tests can check the tools and messages the platform sent.

A script is ``(request body) -> Reply``; :func:`reply_text` and :func:`reply_tool_call` build replies.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the fake model answers: text (sent in ``chunks`` when streaming) and/or tool calls."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "arguments": dict}]
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    status: int = 200
    error: dict[str, Any] | None = None


def reply_text(text: str, chunks: list[str] | None = None, chunk_delay: float = 0.0) -> Reply:
    """A plain answer (streamed in ``chunks`` if given, else word by word)."""
    return Reply(text=text or "".join(chunks or []), chunks=chunks, chunk_delay=chunk_delay)


def reply_tool_call(name: str, arguments: dict[str, Any]) -> Reply:
    """An answer that calls one tool."""
    return Reply(tool_calls=[{"name": name, "arguments": arguments}])


def last_message(body: dict[str, Any]) -> dict[str, Any]:
    """The last message the platform sent."""
    return body["messages"][-1] if body.get("messages") else {}


def tool_names(body: dict[str, Any]) -> list[str]:
    """Names of the tools the platform offered in this request."""
    return [t["function"]["name"] for t in body.get("tools", []) if t.get("type") == "function"]


class FakeOpenAI:
    """Start with ``with FakeOpenAI(script) as fake:``; ``fake.base_url`` ends with ``/v1``."""

    def __init__(self, script: Callable[[dict[str, Any]], Reply], api_key: str | None = None) -> None:
        self.script = script
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.first_token_at: list[float] = []  # time.perf_counter() when each stream's first token was written
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a streamed body ends when the connection closes

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if fake.api_key and self.headers.get("authorization") != f"Bearer {fake.api_key}":
                    self._json(
                        401,
                        {
                            "error": {
                                "message": "Incorrect API key provided",
                                "type": "invalid_request_error",
                                "code": "invalid_api_key",
                            }
                        },
                    )
                    return
                fake.requests.append(body)
                reply = fake.script(body)
                if reply.status != 200:
                    self._json(reply.status, reply.error or {"error": {"message": "scripted failure"}})
                elif body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._json(200, self._completion(body, reply))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            @staticmethod
            def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
                prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", [])) + 7
                completion = len(reply.text.split()) + 5 * len(reply.tool_calls)
                return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

            @staticmethod
            def _calls(reply: Reply) -> list[dict[str, Any]]:
                return [
                    {
                        "id": f"call_{i}_{int(time.time() * 1000)}",
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
                    }
                    for i, c in enumerate(reply.tool_calls)
                ]

            def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
                message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
                if reply.tool_calls:
                    message["tool_calls"] = self._calls(reply)
                return {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
                    ],
                    "usage": self._usage(body, reply),
                }

            def _event(
                self,
                body: dict[str, Any],
                delta: dict[str, Any],
                finish: str | None = None,
                usage: dict[str, int] | None = None,
            ) -> None:
                chunk: dict[str, Any] = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
                }
                if usage is not None:
                    chunk["usage"] = usage
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

            def _stream(self, body: dict[str, Any], reply: Reply) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.end_headers()
                self._event(body, {"role": "assistant", "content": ""})
                pieces = (
                    reply.chunks
                    if reply.chunks is not None
                    else [w + " " for w in reply.text.split(" ")[:-1]] + reply.text.split(" ")[-1:]
                )
                first = True
                for piece in pieces if reply.text else []:
                    if reply.chunk_delay:
                        time.sleep(reply.chunk_delay)
                    if first:
                        fake.first_token_at.append(time.perf_counter())
                        first = False
                    self._event(body, {"content": piece})
                for index, call in enumerate(self._calls(reply)):
                    self._event(
                        body,
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": call["function"]["name"], "arguments": ""},
                                }
                            ]
                        },
                    )
                    self._event(
                        body,
                        {"tool_calls": [{"index": index, "function": {"arguments": call["function"]["arguments"]}}]},
                    )
                self._event(body, {}, finish="tool_calls" if reply.tool_calls else "stop")
                self._event(body, {}, usage=self._usage(body, reply))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
