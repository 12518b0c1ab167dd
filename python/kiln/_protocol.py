"""OpenAI request fields → a validated kiln request.

The parser and validator are the api layer's (include/kiln/openai.h, src/api/openai.cc): the
very code `kiln serve` runs, reached through kiln._core.parse_request, so a field means the same
thing and fails with the same error (`param` names the field) on both front ends. This module
only turns the Python call's arguments into the JSON body a client would send.
"""
import json

from . import _core
from ._errors import BadRequestError, from_request_error

INT32_MAX = 2**31 - 1


def _default(obj):
    # openai's TypedDicts are dicts; pydantic models (a previous response's message, a
    # ChatCompletionMessageToolCall, …) are dumped as the client would send them.
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=True)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def to_json(body):
    try:
        return json.dumps(body, default=_default, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise BadRequestError(f"the request is not valid JSON: {e}") from None


def parse_request(body, chat, n_vocab=0):
    """body: the request as a dict of OpenAI fields. Raises BadRequestError naming the field."""
    try:
        return _core.parse_request(to_json(body), chat, n_vocab)
    except _core.RequestError as e:
        raise from_request_error(e) from None


def int_value(v, name, lo, hi):
    if not isinstance(v, int) or isinstance(v, bool):
        raise BadRequestError(f"'{name}' must be an integer", name)
    if v < lo or v > hi:
        raise BadRequestError(f"'{name}' must be between {lo} and {hi}, got {v}", name)
    return v
