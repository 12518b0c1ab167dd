"""Builders for the JSON Schemas the structured-generation tests share (test_structured.py,
test_grammar_walk.py): closed objects and the recursive tree. Not a test module."""

from __future__ import annotations


def closed_object(properties: dict, required: list | None = None) -> dict:
    """An object with exactly these properties (additionalProperties false); every property is
    required unless `required` names the required ones."""
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": False}


def tree(value: dict) -> dict:
    """A recursive tree through $defs/$ref: {"v": value, "kids": [at most two subtrees]}."""
    node = closed_object({"v": value,
                          "kids": {"type": "array", "items": {"$ref": "#/$defs/node"},
                                   "maxItems": 2}}, required=["v"])
    return {"$defs": {"node": node}, "$ref": "#/$defs/node"}
