"""`/v1/admin/cdc` (scope `admin`): the CDC connectors the server supervises
(`runtime.cdc_supervisor`, at `AppState.cdc`).

`GET /v1/admin/cdc` lists them (state, position, lag, counters, restarts, last error, next
retry); `POST /v1/admin/cdc/connectors` with `{"config": "/abs/path.yml"}` starts the connector of
a config file the server can read (422 for a path that is not an absolute, readable file or a
config with problems, each listed; 409 when a connector of that name, or with that server_id,
runs); `DELETE /v1/admin/cdc/connectors/{name}` stops one at a transaction boundary (404 for a
name not supervised). Starting and stopping run on a thread: they read a file, join a thread.
An app without a supervisor (`AppState.cdc` None) lists none and answers 409 to the others.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from runtime.cdc_supervisor import (
    AlreadyRunning,
    InvalidConfig,
    Stopped,
    Supervisor,
    UnknownConnector,
    name_problem,
)
from server.auth import require
from server.errors import ApiError, ErrorBody, responses

router = APIRouter(prefix="/v1/admin/cdc", tags=["admin"])
ADMIN = [Depends(require("admin", limit="lookup"))]
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "a connector of that name or server_id runs, or no supervisor runs",
    }
}


class ConnectorRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: Annotated[
        str,
        Field(
            min_length=1,
            max_length=4096,
            description="Absolute path of a CDC config file (YAML) the server can read",
        ),
    ]


class Connectors(BaseModel):
    connectors: list[dict[str, Any]]


class Connector(BaseModel):
    connector: dict[str, Any]


def _supervisor(request: Request) -> Supervisor:
    sup: Supervisor | None = request.app.state.eql.cdc
    if sup is None:
        raise ApiError(409, "conflict", "this server runs no CDC supervisor")
    return sup


def _one(sup: Supervisor, name: str) -> dict[str, Any]:
    return next(e for e in sup.status() if e["name"] == name)


@router.get(
    "",
    response_model=Connectors,
    summary="CDC connectors: state, position, lag, counters, restarts",
    dependencies=ADMIN,
    responses=responses(401, 403, 429),
)
async def list_connectors(request: Request) -> Connectors:
    sup: Supervisor | None = request.app.state.eql.cdc
    if sup is None:
        return Connectors(connectors=[])
    return Connectors(connectors=await asyncio.to_thread(sup.status))


@router.post(
    "/connectors",
    status_code=201,
    response_model=Connector,
    summary="Start the CDC connector of a config file",
    dependencies=ADMIN,
    responses=responses(400, 401, 403, 422, 429) | _CONFLICT,
)
async def add_connector(body: ConnectorRequest, request: Request) -> Connector:
    sup = _supervisor(request)
    try:
        name = await asyncio.to_thread(sup.add, body.config)
    except InvalidConfig as exc:
        raise ApiError(
            422,
            "invalid_config",
            exc.problems[0] if len(exc.problems) == 1 else f"{len(exc.problems)} problems",
            problems=list(exc.problems),
        ) from None
    except AlreadyRunning as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except Stopped as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return Connector(connector=await asyncio.to_thread(_one, sup, name))


@router.delete(
    "/connectors/{name}",
    response_model=Connector,
    summary="Stop a CDC connector (at a transaction boundary)",
    dependencies=ADMIN,
    responses=responses(401, 403, 404, 422, 429) | _CONFLICT,
)
async def remove_connector(name: str, request: Request) -> Connector:
    problem = name_problem(name)
    if problem is not None:
        raise ApiError(422, "invalid_request", problem)
    sup = _supervisor(request)
    try:
        entry = await asyncio.to_thread(sup.remove, name)
    except UnknownConnector as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return Connector(connector=entry)
