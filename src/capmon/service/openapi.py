"""The OpenAPI document, served as OpenAPI 3.0 (OGC API - Processes' ``oas30`` class).

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12). OGC clients and many code generators expect
3.0, so the document is rewritten once: ``anyOf [X, null]`` and ``type [X, "null"]`` become
``nullable``, ``const`` an ``enum``, numeric ``exclusiveMinimum`` the boolean form, binary
uploads ``format: binary``, schema ``examples`` a single ``example``.

The token endpoints are declared as OAuth2 password flows (:func:`declare_token_endpoints`),
so clients and tools know where tokens come from. Every operation then declares the error
answers the service gives (:func:`declare_errors`):
400 when it takes parameters or a body (FastAPI's 422 is never answered), 401 and 403 when it
needs a token, 404 when its path or a ``site`` parameter names something, each an exception
document
(``application/json``, also where the success answer is text).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

OPENAPI_VERSION = "3.0.3"
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains")


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return the 3.0 document, built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                license_info=app.license_info,
                servers=app.servers,
            )
            app.openapi_schema = declare_token_endpoints(declare_errors(to_openapi30(document)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def to_openapi30(document: dict[str, Any]) -> dict[str, Any]:
    """A 3.0 copy of a FastAPI 3.1 document."""
    doc = copy.deepcopy(document)
    doc["openapi"] = OPENAPI_VERSION
    info = doc.get("info", {})
    info.get("license", {}).pop("identifier", None)
    info.pop("summary", None)
    for name, schema in list(doc.get("components", {}).get("schemas", {}).items()):
        doc["components"]["schemas"][name] = _schema(schema)
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    parameter["schema"] = _schema(parameter["schema"])
            _content(operation.get("requestBody", {}))
            for response in operation.get("responses", {}).values():
                _content(response)
                for header in response.get("headers", {}).values():
                    if "schema" in header:
                        header["schema"] = _schema(header["schema"])
    return doc


def _content(holder: dict[str, Any]) -> None:
    for media in holder.get("content", {}).values():
        if "schema" in media:
            media["schema"] = _schema(media["schema"])


def _schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SCHEMA_LISTS:
        if key in out:
            out[key] = [_schema(s) for s in out[key]]
    for key in _SCHEMA_MAPS:
        if key in out:
            out[key] = {k: _schema(v) for k, v in out[key].items()}
    for key in _SCHEMA_VALUES:
        if isinstance(out.get(key), dict):
            out[key] = _schema(out[key])
    if "prefixItems" in out:  # 3.0 has no tuples: any of the listed item schemas
        out.setdefault("items", {"anyOf": out["prefixItems"]} if out["prefixItems"] else {})
        del out["prefixItems"]
    if "anyOf" in out:
        options = [s for s in out["anyOf"] if s != {"type": "null"}]
        if len(options) < len(out["anyOf"]):
            out["nullable"] = True
            if len(options) == 1:
                del out["anyOf"]
                only = options[0]
                if "$ref" in only:
                    out["allOf"] = [only]
                else:
                    out = {**only, **out}
            else:
                out["anyOf"] = options
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        if len(types) == 1:
            out["type"] = types[0]
        else:
            del out["type"]
            out["anyOf"] = [{"type": t} for t in types]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[inclusive] = out[bound]
            out[bound] = True
    if "contentMediaType" in out or out.get("contentEncoding") == "binary":
        out.pop("contentMediaType", None)
        out.pop("contentEncoding", None)
        out["format"] = "binary"
    if "examples" in out:
        examples = out.pop("examples")
        if isinstance(examples, list) and examples:
            out.setdefault("example", examples[0])
    if "nullable" in out and "$ref" in out:  # siblings of $ref are ignored in 3.0
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    for key in ("$schema", "$id", "$defs", "unevaluatedProperties", "dependentRequired"):
        out.pop(key, None)
    return out


EXCEPTION_SCHEMA = "ExceptionDocument"
_ERROR_ANSWERS = {
    "400": "Invalid input (the exception document names the parameter)",
    "401": "No token, or an expired, forged or revoked one",
    "403": "Not allowed for your role or sites",
    "404": "Not found",
}


def declare_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Declare the error answers each operation can give (see the module docstring)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        EXCEPTION_SCHEMA,
        {
            "title": EXCEPTION_SCHEMA,
            "type": "object",
            "required": ["type", "title", "status", "detail", "instance"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": {"type": "string"}},
                    "nullable": True,
                },
            },
        },
    )
    reference = {"$ref": f"#/components/schemas/{EXCEPTION_SCHEMA}"}
    for path, path_item in document.get("paths", {}).items():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)  # request validation errors answer 400
            wanted = []
            if operation.get("parameters") or operation.get("requestBody"):
                wanted.append("400")
            if operation.get("security"):
                wanted += ["401", "403"]
            names = {parameter.get("name") for parameter in operation.get("parameters", [])}
            if "{" in path or "site" in names:  # an admin naming a missing site: 404
                wanted.append("404")
            for status in wanted:
                responses.setdefault(
                    status,
                    {
                        "description": _ERROR_ANSWERS[status],
                        "content": {"application/json": {"schema": reference}},
                    },
                )
            for status, response in responses.items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and set(content) == {"text/plain"}:
                    response["content"] = {"application/json": content["text/plain"]}
            if "401" in responses:
                responses["401"].setdefault(
                    "headers",
                    {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
                )
    return document


TOKEN_SCHEMES = {
    "OAuth2": {
        "type": "oauth2",
        "description": "Password and refresh-token grants at /auth/token (RFC 6749); send the "
        "access token as a bearer token or in X-Auth-Token",
        "flows": {
            "password": {"tokenUrl": "/auth/token", "refreshUrl": "/auth/token", "scopes": {}}
        },
    },
    "Sen4CAPLogin": {
        "type": "oauth2",
        "description": "Sen4CAP's login form at /auth/login: the same tokens",
        "flows": {"password": {"tokenUrl": "/auth/login", "scopes": {}}},
    },
}


def declare_token_endpoints(document: dict[str, Any]) -> dict[str, Any]:
    """Name /auth/token and /auth/login as the token URLs of OAuth2 password flows, offered
    by every operation that needs a token alongside the bearer and X-Auth-Token schemes."""
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.update(copy.deepcopy(TOKEN_SCHEMES))
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and operation.get("security"):
                operation["security"] += [{name: []} for name in TOKEN_SCHEMES]
    return document
