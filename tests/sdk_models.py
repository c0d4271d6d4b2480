"""Check a JSON body against the official SDK's model (PureCloudPlatformClientV2): every key is a field
of the model, every value has the model's type, every enum value is one the SDK knows, and no value is
null (the platform omits unset fields). Returns the problems, so a test shows all of them at once."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import PureCloudPlatformClientV2.models as sdk_models

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
}


def problems(body: Any, model: str, where: str = "$") -> list[str]:
    found: list[str] = []
    _check(body, model, where, found)
    return found


def _check(value: Any, type_name: str, where: str, found: list[str]) -> None:
    if value is None:
        found.append(f"{where}: null (the platform omits unset fields)")
        return
    if match := _LIST.match(type_name):
        if not isinstance(value, list):
            found.append(f"{where}: expected a list of {match.group(1)}")
            return
        for i, item in enumerate(value):
            _check(item, match.group(1), f"{where}[{i}]", found)
        return
    if match := _DICT.match(type_name):
        if not isinstance(value, dict):
            found.append(f"{where}: expected an object")
            return
        for key, item in value.items():
            _check(item, match.group(1), f"{where}.{key}", found)
        return
    if type_name == "datetime":
        if not isinstance(value, str):
            found.append(f"{where}: expected an ISO-8601 string")
            return
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            found.append(f"{where}: {value!r} is not ISO-8601")
        return
    if type_name in _PRIMITIVES:
        expected = _PRIMITIVES[type_name]
        if (type_name in ("int", "float") and isinstance(value, bool)) or not isinstance(value, expected):
            found.append(f"{where}: expected {type_name}, got {type(value).__name__}")
        return
    cls = getattr(sdk_models, type_name, None)
    if cls is None:
        found.append(f"{where}: the SDK has no model {type_name}")
        return
    if not isinstance(value, dict):
        found.append(f"{where}: expected an object ({type_name})")
        return
    instance = cls()
    by_json = {json_name: attr for attr, json_name in instance.attribute_map.items()}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            found.append(f"{where}.{key}: not a field of {type_name}")
            continue
        field_type = instance.swagger_types[attr]
        _check(item, field_type, f"{where}.{key}", found)
        if field_type == "str" and isinstance(item, str):
            setattr(instance, attr, item)  # enum setters map unknown values to a placeholder
            if getattr(instance, attr) == "outdated_sdk_version":
                found.append(f"{where}.{key}: {item!r} is not a value the SDK's enum knows")
