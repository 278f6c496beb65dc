"""An integration's config schema, and the values stored against it (defaults and per-organization).

A schema is a list of fields ``{"key", "type", "secret", "description"}`` with ``type`` one of
``string``, ``int``, ``bool``, ``json`` (a secret is a non-empty string). Values are stored as a
JSON object: plain values as they are, secret ones as Fernet tokens. Writing a value checks it
against the schema; writing :data:`SECRET_MASK` (what a form shows for a stored secret) or
leaving a secret out keeps the stored one; ``null`` removes a value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from app.services.config.service import SECRET_MASK
from app.services.errors import InvalidInputError
from app.services.secrets import SecretBox

# Like config keys: letters, digits and _ . : - (starting with a letter, digit or _).
KEY_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]*")
MAX_KEY_LENGTH = 255
FIELD_TYPES = ("string", "int", "bool", "json")
FIELD_KEYS = frozenset({"key", "type", "secret", "description"})
MAX_FIELDS = 100
MAX_VALUE_CHARS = 64 * 1024
MAX_DESCRIPTION_CHARS = 2000


def parse_schema(raw: Any) -> list[dict[str, Any]]:
    """A checked, normalised schema (``[{"key", "type", "secret", "description"}]``).

    Raises:
        InvalidInputError: Not a list of objects, an unknown attribute, a bad or repeated key,
            an unknown type, a secret that is not a string.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidInputError.field("config_schema", "must be a list of fields")
    if len(raw) > MAX_FIELDS:
        raise InvalidInputError.field("config_schema", f"may have at most {MAX_FIELDS} fields")
    fields: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"config_schema[{index}]"
        if not isinstance(item, dict):
            raise InvalidInputError.field(where, 'must be an object like {"key": "base_url", "type": "string"}')
        unknown = sorted(set(item) - FIELD_KEYS)
        if unknown:
            raise InvalidInputError.field(f"{where}.{unknown[0]}", f"unknown attribute (allowed: {sorted(FIELD_KEYS)})")
        key = item.get("key")
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not KEY_PATTERN.fullmatch(key):
            raise InvalidInputError.field(
                f"{where}.key", "must be letters, digits and _ . : - (starting with a letter, digit or _)"
            )
        if key in seen:
            raise InvalidInputError.field(f"{where}.key", f"{key!r} appears twice")
        seen.add(key)
        field_type = item.get("type", "string")
        if field_type not in FIELD_TYPES:
            raise InvalidInputError.field(f"{where}.type", f"must be one of {', '.join(FIELD_TYPES)}")
        secret = item.get("secret", False)
        if not isinstance(secret, bool):
            raise InvalidInputError.field(f"{where}.secret", "must be true or false")
        if secret and field_type != "string":
            raise InvalidInputError.field(f"{where}.secret", "only string fields can be secret")
        description = item.get("description")
        if description is not None:
            if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
                raise InvalidInputError.field(
                    f"{where}.description", f"must be text of at most {MAX_DESCRIPTION_CHARS} characters"
                )
            _check_text(description, f"{where}.description")
        fields.append({"key": key, "type": field_type, "secret": secret, "description": description or None})
    return fields


def _check_value(field: dict[str, Any], value: Any, where: str) -> Any:
    field_type = field["type"]
    if field["secret"] or field_type == "string":
        if not isinstance(value, str) or (field["secret"] and not value):
            raise InvalidInputError.field(
                where, "must be a non-empty string" if field["secret"] else "must be a string"
            )
        text = value
    elif field_type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError.field(where, "must be an integer")
        return value
    elif field_type == "bool":
        if not isinstance(value, bool):
            raise InvalidInputError.field(where, "must be true or false")
        return value
    else:
        try:
            # ensure_ascii=False: lone surrogates stay visible to the Unicode check below.
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError):
            raise InvalidInputError.field(where, "must be JSON (objects, arrays, text, numbers, booleans)") from None
    _check_text(text, where)
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidInputError.field(where, f"must be at most {MAX_VALUE_CHARS} characters")
    return value


def _check_text(text: str, where: str) -> None:
    """No NUL (Postgres cannot store it) and valid Unicode (no lone surrogates)."""
    if "\x00" in text:
        raise InvalidInputError.field(where, "must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError.field(where, "must be valid Unicode text") from None


def merge_values(
    schema: list[dict[str, Any]],
    stored: dict[str, Any],
    updates: Any,
    box: SecretBox,
    field_name: str,
) -> dict[str, Any]:
    """``stored`` with ``updates`` applied and checked against ``schema`` (secrets encrypted).

    Args:
        schema: The integration's schema.
        stored: The values stored so far (secret ones encrypted).
        updates: ``{key: value}``; ``None`` removes the key; a secret given as :data:`SECRET_MASK` is kept.
        box: Encrypts secrets.
        field_name: Names the updates in errors (``config_defaults`` or ``config``).

    Raises:
        InvalidInputError: Not an object, a key outside the schema, a value of the wrong type.
    """
    if updates is None:
        return dict(stored)
    if not isinstance(updates, dict):
        raise InvalidInputError.field(field_name, "must be an object of key: value")
    fields = {f["key"]: f for f in schema}
    result = {k: v for k, v in stored.items() if k in fields}
    for key, value in updates.items():
        where = f"{field_name}.{key}"
        field = fields.get(key)
        if field is None:
            raise InvalidInputError.field(where, "is not in the integration's config schema")
        if value is None:
            result.pop(key, None)
            continue
        if field["secret"] and value == SECRET_MASK:
            continue  # the form showed the mask: keep the stored secret
        value = _check_value(field, value, where)
        result[key] = box.encrypt(value) if field["secret"] else value
    return result


def prune_values(
    old_schema: list[dict[str, Any]], new_schema: list[dict[str, Any]], stored: dict[str, Any]
) -> dict[str, Any]:
    """Values that still fit after a schema change: a removed key, or one whose type or secrecy changed, goes."""
    old = {f["key"]: (f["type"], f["secret"]) for f in old_schema}
    new = {f["key"]: (f["type"], f["secret"]) for f in new_schema}
    return {k: v for k, v in stored.items() if k in new and old.get(k) == new[k]}


def reveal_values(
    schema: list[dict[str, Any]], stored: dict[str, Any], box: SecretBox, reveal: bool, what: str
) -> tuple[dict[str, Any], list[str]]:
    """Stored values as a caller sees them.

    Args:
        schema: The integration's schema (keys outside it are ignored).
        stored: Stored values (secret ones encrypted).
        box: Decrypts secrets.
        reveal: Decrypt secrets (executions only); else they read :data:`SECRET_MASK`.
        what: Names the values in a decryption error.

    Returns:
        The values, and the plaintext of every secret revealed (for redaction).
    """
    secrets = {f["key"] for f in schema if f["secret"]}
    shown: dict[str, Any] = {}
    plaintexts: list[str] = []
    for field in schema:
        key = field["key"]
        if key not in stored:
            continue
        if key in secrets:
            if reveal:
                plaintext = box.decrypt(stored[key], f"config value {key!r} of {what}")
                plaintexts.append(plaintext)
                shown[key] = plaintext
            else:
                shown[key] = SECRET_MASK
        else:
            shown[key] = stored[key]
    return shown, plaintexts
