"""Reference pages generated from the code at build time, so they cannot drift from it.

Three MyST directives, each rendering Markdown that the page's own parser reads:

- ``settings-reference``: every key of a pydantic settings model (the hub's, the edge
  agent's, a source's), with its type, allowed values, default and description;
- ``contract-reference``: the wire contract's JSON Schema, the document the hub serves
  at ``/api/v1/contract``;
- ``openapi-reference``: the hub's HTTP API from its OpenAPI document.
"""

from __future__ import annotations

import importlib
import json
import types
import typing
from datetime import date, datetime, time
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

import annotated_types
from docutils.parsers.rst import directives
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete")


def _import(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (itself, optional, or a list of it), else None."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if _is_union(annotation) and len(args) == 1:
        return _model_of(args[0])
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _list_members(annotation: Any) -> list[type[BaseModel]]:
    """The models a list field holds: one, or each member of a discriminated union."""
    if typing.get_origin(annotation) is not list:
        return []
    (item,) = typing.get_args(annotation)
    if typing.get_origin(item) is typing.Annotated:
        item = typing.get_args(item)[0]
    members = typing.get_args(item) if _is_union(item) else (item,)
    return [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]


def _constraints(metadata: list[Any]) -> list[str]:
    out = []
    for item in metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                out.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            out.append(f"at least {item.min_length} long")
        if isinstance(item, annotated_types.MaxLen):
            out.append(f"at most {item.max_length} long")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matches `{pattern}`")
    return out


def type_name(annotation: Any) -> str:
    """A reader's name for a type: ``integer ≥ 1``, ``list of number``, ``one of a, b``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base, *metadata = args
        extra = _constraints(metadata)
        return type_name(base) + (f" ({', '.join(extra)})" if extra else "")
    if _is_union(annotation):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{json.dumps(a)}`" for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is tuple:
        return "pair of " + type_name(args[0]) if len(args) == 2 else "tuple"
    if origin is dict:
        return f"table of {type_name(args[0])} → {type_name(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return "one of " + ", ".join(f"`{json.dumps(m.value)}`" for m in annotation)
        if issubclass(annotation, BaseModel):
            return "table"
        names = {
            bool: "boolean",
            int: "integer",
            float: "number",
            str: "string",
            SecretStr: "secret string",
            Path: "path",
            date: "date",
            time: "time",
            datetime: "date and time",
        }
        for kind, name in names.items():
            if issubclass(annotation, kind):
                return name
    return str(annotation).replace("typing.", "")


def _field_type(info: FieldInfo) -> str:
    name = type_name(info.annotation)
    extra = _constraints(info.metadata)
    return name + (f" ({', '.join(extra)})" if extra else "")


def _toml(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "**required**"
    else:
        value = info.default
    if value is None:
        return "unset"
    if value in ({}, []):
        return "empty"
    return f"`{_toml(value)}`"


def _doc(model: type[BaseModel]) -> str:
    """A model's own docstring, not one it inherited from pydantic or a base."""
    doc = model.__dict__.get("__doc__")
    return " ".join(doc.split()) if doc else ""


def _table(model: type[BaseModel], skip: set[str]) -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip or _model_of(info.annotation) or _list_members(info.annotation):
            continue
        rows.append(
            f"| `{name}` | {_cell(_field_type(info))} | {_cell(default_text(info))} "
            f"| {_cell(info.description or '')} |"
        )
    return rows if len(rows) > 2 else []


def render_settings(
    model: type[BaseModel], *, path: str = "", env_prefix: str = "", level: int = 2
) -> list[str]:
    """Markdown for ``model``: a table of its plain keys, then a section per sub-table."""
    lines: list[str] = []
    table = _table(model, set())
    if table:
        lines += [*table, ""]
    for name, info in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        heading = "#" * level
        sub = _model_of(info.annotation)
        if sub is not None:
            lines += [f"{heading} `[{key}]`", ""]
            note = " ".join(part for part in (info.description or "", _doc(sub)) if part)
            if note:
                lines += [note, ""]
            if env_prefix:
                variable = f"{env_prefix}{key.replace('.', '__').upper()}__…"
                lines += [f"Environment: `{variable}`", ""]
            lines += render_settings(sub, path=key, level=level + 1)
            continue
        members = _list_members(info.annotation)
        if len(members) == 1:
            lines += [f"{heading} `[[{key}]]`", ""]
            note = " ".join(part for part in (info.description or "", _doc(members[0])) if part)
            if note:
                lines += [note, ""]
            lines += render_settings(members[0], path=key, level=level + 1)
        elif members:
            lines += [f"{heading} `[[{key}]]`", ""]
            if info.description:
                lines += [info.description, ""]
            lines += ["One of these, chosen by `type`.", ""]
            for member in members:
                kind = member.model_fields["type"].default
                lines += [f"{heading}# `type = {json.dumps(kind)}`", ""]
                if _doc(member):
                    lines += [_doc(member), ""]
                lines += render_settings(member, path=key, level=level + 2)
    return lines


def render_contract(schema: dict[str, Any]) -> list[str]:
    lines = [schema["description"], ""]
    for stream, body in schema["streams"].items():
        lines += [f"## `{stream}`", "", f"Topic: `{body['x-topic']}`", ""]
        if body.get("description"):
            lines += [" ".join(body["description"].split()), ""]
        lines += _schema_table(body)
    lines += [
        "## Facility state",
        "",
        "Published retained by the hub on `ruuhka/v1/facilities/{facility_id}/state`.",
        "",
    ]
    lines += _schema_table(schema["facility_state"])
    lines += ["## The whole schema", "", "```json", json.dumps(schema, indent=2), "```", ""]
    return lines


def _schema_type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        target = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
        if "enum" in target:
            return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in target["enum"])
        return target.get("title", "object")
    if "anyOf" in prop:
        names = [_schema_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(names)
    if "enum" in prop:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return "list of " + _schema_type(prop.get("items", {}), defs)
    if prop.get("format"):
        kind += f" ({prop['format']})"
    limits = [
        f"{sign} {prop[key]}"
        for key, sign in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
            ("maxLength", "length ≤"),
        )
        if key in prop
    ]
    if "pattern" in prop:
        limits.append(f"matches `{prop['pattern']}`")
    return kind + (f", {', '.join(limits)}" if limits else "")


def _schema_table(schema: dict[str, Any]) -> list[str]:
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            f"| `{name}` | {_cell(_schema_type(prop, defs))} | {'yes' if name in required else ''} "
            f"| {_cell(' '.join(prop.get('description', '').split()))} |"
        )
    return [*rows, ""]


def render_openapi(document: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if document["info"].get("description"):
        lines += [document["info"]["description"], ""]
    for path, item in document["paths"].items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            lines += [f"## `{method.upper()} {path}`", ""]
            if operation.get("summary"):
                lines += [f"**{operation['summary']}**", ""]
            if operation.get("description"):
                lines += [operation["description"].strip(), ""]
            params = operation.get("parameters", [])
            if params:
                lines += [
                    "| parameter | in | type | required | description |",
                    "|---|---|---|---|---|",
                ]
                for param in params:
                    schema = param.get("schema", {})
                    lines.append(
                        f"| `{param['name']}` | {param['in']} "
                        f"| {_cell(_schema_type(schema, {}))} "
                        f"| {'yes' if param.get('required') else ''} "
                        f"| {_cell(param.get('description') or schema.get('description', ''))} |"
                    )
                lines.append("")
            if "requestBody" in operation:
                kinds = ", ".join(f"`{k}`" for k in operation["requestBody"].get("content", {}))
                lines += [f"Request body: {kinds}.", ""]
            answers = ", ".join(
                f"{code} {_cell(body.get('description', ''))}"
                for code, body in operation.get("responses", {}).items()
            )
            lines += [f"Responses: {answers}.", ""]
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Shapes", "", "The objects the operations above take and give.", ""]
    for name, schema in schemas.items():
        lines += [f"### `{name}`", ""]
        if schema.get("description"):
            lines += [" ".join(schema["description"].split()), ""]
        if "enum" in schema:
            lines += ["One of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"]), ""]
        elif schema.get("properties"):
            lines += _schema_table({**schema, "$defs": schemas})
    return lines


class _Generated(SphinxDirective):
    """Parse generated Markdown as if it were written in the page."""

    def markdown(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[Any]:
        return self.parse_text_to_nodes("\n".join(self.markdown()), allow_section_headings=True)


class SettingsReference(_Generated):
    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {
        "env-prefix": directives.unchanged,
        "path": directives.unchanged,
        "level": directives.positive_int,
    }

    def markdown(self) -> list[str]:
        model = _import(self.arguments[0])
        return render_settings(
            model,
            path=self.options.get("path", ""),
            env_prefix=self.options.get("env-prefix", ""),
            level=self.options.get("level", 2),
        )


class ContractReference(_Generated):
    def markdown(self) -> list[str]:
        from ruuhka.contract import json_schema

        return render_contract(json_schema())


class OpenApiReference(_Generated):
    def markdown(self) -> list[str]:
        from hub.app import create_app
        from hub.config import HubSettings

        return render_openapi(create_app(HubSettings()).openapi())


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("settings-reference", SettingsReference)
    app.add_directive("contract-reference", ContractReference)
    app.add_directive("openapi-reference", OpenApiReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
