"""The execute route's input, read without Litestar's per-call parameter and dependency machinery.

``POST /api/workflows/{name}/execute`` is the hot path of issue 23. Declared the usual way (``actor`` as a
dependency, ``data: ExecuteRequest``, ``wait: bool``), Litestar spends ~20 us of the event loop per call
resolving them (``bench`` microbenchmark in the commit message): the handler takes the request alone and
:func:`read_execute_input` does the same steps in the same order, so every answer stays the same:

1. the body is read and decoded as JSON: a malformed body is 400 with msgspec's message, before
   authentication (Litestar decoded ``data`` before resolving dependencies);
2. the caller is authenticated (:func:`app.web.deps.resolve_actor`, the one function the ``actor``
   dependency calls);
3. the body's shape and ``?wait`` are checked: a well-formed call is decoded straight into
   :class:`ExecuteBody`; anything else is handed to the signature model Litestar would have built for the
   declared handler (:func:`execute_signature`), so a refused call gets Litestar's exact 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar._signature import SignatureModel
from litestar.exceptions import ClientException, SerializationException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import Parameter
from litestar.utils.signature import ParsedSignature
from pydantic import BaseModel, Field

from app.services.actor import Actor
from app.web.deps import resolve_actor

WAIT_DESCRIPTION = "Wait for the result (200) instead of 202 + execution id"


class ExecuteRequest(BaseModel):
    """Body of an execute call."""

    params: dict[str, Any] = Field(default_factory=dict, description="Workflow parameters by name")
    org: str | None = Field(default=None, description="Organization id or name to run in (platform admins only)")


class ExecuteBody(msgspec.Struct):
    """:class:`ExecuteRequest` for msgspec: what a well-formed body decodes to in one step."""

    params: dict[str, Any] = {}
    org: str | None = None


_DECODE_BODY = msgspec.json.Decoder(ExecuteBody)


async def execute_signature(
    actor: Actor,
    name: str,
    data: ExecuteRequest,
    wait: bool = Parameter(default=False, description=WAIT_DESCRIPTION),
) -> None:
    """The execute handler's former signature: its Litestar signature model words the 400 of a refused call."""


@cache
def _signature_model(dependency_names: frozenset[str], type_decoders: tuple[Any, ...]) -> type[SignatureModel]:
    return SignatureModel.create(
        dependency_name_set=set(dependency_names),
        fn=execute_signature,
        parsed_signature=ParsedSignature.from_fn(execute_signature, {"Actor": Actor, "ExecuteRequest": ExecuteRequest}),
        type_decoders=list(type_decoders),
    )


def _last_query_value(request: Request[Any, Any, Any], key: str) -> str | None:
    # Litestar's query extractor keeps the last value of a repeated non-list parameter.
    values = request.query_params.getall(key, [])
    return values[-1] if values else None


async def read_execute_input(request: Request[Any, Any, Any]) -> tuple[Actor, ExecuteBody, bool]:
    """The caller, the body and ``?wait`` of an execute call, refused exactly as the declared handler was.

    Raises:
        ClientException: Malformed JSON (400, before authentication).
        AuthenticationError: No or invalid credentials (and every other refusal of ``resolve_actor``).
        ValidationException: A body or ``wait`` of the wrong shape (Litestar's own 400).
    """
    raw = await request.body()
    body: ExecuteBody | None = None
    try:
        body = _DECODE_BODY.decode(raw)
    except msgspec.MsgspecError:
        if raw:
            try:
                await request.json()  # the message Litestar's data extraction gave, and the decoded value
            except SerializationException as e:
                raise ClientException(str(e)) from e
    actor = await resolve_actor(request)
    wait_raw = _last_query_value(request, "wait")
    wait: bool | None = False
    if wait_raw is not None:
        try:
            wait = msgspec.convert(wait_raw, bool, strict=False)
        except msgspec.ValidationError:
            wait = None
    if body is not None and wait is not None:
        return actor, body, wait
    # A refused call (rare): what Litestar's signature model of the former handler says, word for word.
    handler = request.route_handler
    model = _signature_model(frozenset(handler.dependency_name_set), tuple(handler.resolve_type_decoders()))
    # In this order: msgspec reads a mapping in its order, so the first wrong value decides which error
    # report Litestar builds (pydantic's for the body, else one per field).
    kwargs: dict[str, Any] = {"name": request.path_params["name"]}
    if raw:
        kwargs["data"] = await request.json()
    if wait_raw is not None:
        kwargs["wait"] = wait_raw
    kwargs["actor"] = actor
    parsed = model.parse_values_from_connection_kwargs(connection=request, kwargs=kwargs)
    # Not reached for a body msgspec refused (the model refuses it too); kept as the model's reading if so.
    data: ExecuteRequest = parsed["data"]
    return actor, ExecuteBody(params=data.params, org=data.org), parsed["wait"]


@dataclass
class ExecuteOperation(Operation):
    """The execute route's OpenAPI operation: its body and ``wait``, which the handler no longer declares."""

    def __post_init__(self) -> None:
        if self.request_body is None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=_BODY_SCHEMA)},
                required=True,
            )
        wait = OpenAPIParameter(
            name="wait",
            param_in="query",  # type: ignore[arg-type]
            schema=Schema(type=OpenAPIType.BOOLEAN, description=WAIT_DESCRIPTION, default=False),
            description=WAIT_DESCRIPTION,
            required=False,
        )
        parameters = list(self.parameters or [])
        if not any(getattr(p, "name", None) == "wait" for p in parameters):
            self.parameters = [*parameters, wait]


_BODY_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    title="ExecuteRequest",
    description=ExecuteRequest.__doc__,
    properties={
        "params": Schema(
            type=OpenAPIType.OBJECT, additional_properties=Schema(), description="Workflow parameters by name"
        ),
        "org": Schema(
            one_of=[Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.NULL)],
            description="Organization id or name to run in (platform admins only)",
        ),
    },
)
