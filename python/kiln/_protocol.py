"""OpenAI request fields → validated kiln request, mirroring server/protocol/request.cc.

The C++ protocol layer is not part of include/kiln (the only API python/ may use), so this is a
port with the same rules and the same messages (`param` names the field). Keep them in step.
Fields OpenAI documents that do not change the output (user, store, metadata, …) and unknown
fields are ignored, like the server; fields kiln cannot honour yet fail closed.
"""
import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

from ._errors import BadRequestError

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_STOP_CHARS = 512


@dataclass
class Limits:
    max_n: int = 16
    max_stop: int = 4
    max_logit_bias: int = 1024
    max_top_logprobs: int = 20
    max_messages: int = 4096
    n_vocab: int = 0


@dataclass
class Sampling:
    """kiln::SamplingOptions with its C++ defaults."""
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict = field(default_factory=dict)
    seed: Optional[int] = None
    n: int = 1
    stop: List[str] = field(default_factory=list)
    stop_token_ids: List[int] = field(default_factory=list)
    max_tokens: int = -1
    min_tokens: int = 0
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class ParsedRequest:
    chat: bool
    model: str = ""
    stream: bool = False
    include_usage: bool = False
    messages: Any = None
    prompt_text: Optional[str] = None
    prompt_ids: List[int] = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)


def _invalid(param, message):
    return BadRequestError(message, param)


def _unsupported(param, message):
    return BadRequestError(message, param, "unsupported_parameter")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def _dump(v):
    if isinstance(v, float) and v == int(v) and math.isfinite(v):
        return repr(v)
    return str(v)


def _fmt_g(x):
    return "%g" % x


class _Fields:
    def __init__(self, obj):
        self.obj = obj

    def get(self, key):
        return self.obj.get(key)  # None means absent, as in the server

    def bool(self, key, default):
        v = self.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise _invalid(key, f"'{key}' must be a boolean")
        return v

    def number(self, key, lo, hi, default):
        v = self.get(key)
        if v is None:
            return default
        if not _is_number(v):
            raise _invalid(key, f"'{key}' must be a number")
        d = float(v)
        if not math.isfinite(d) or d < lo or d > hi:
            raise _invalid(key, f"'{key}' must be between {_fmt_g(lo)} and {_fmt_g(hi)}, got {_dump(v)}")
        return d

    def int(self, key, lo, hi, default):
        v = self.get(key)
        if v is None:
            return default
        return int_value(v, key, lo, hi)

    def string(self, key):
        v = self.get(key)
        if v is not None and not isinstance(v, str):
            raise _invalid(key, f"'{key}' must be a string")
        return v


def int_value(v, name, lo, hi):
    if not _is_int(v):
        raise _invalid(name, f"'{name}' must be an integer")
    if v < lo or v > hi:
        raise _invalid(name, f"'{name}' must be between {lo} and {hi}, got {v}")
    return v


def _parse_stop(f, limits, s):
    v = f.get("stop")
    if v is None:
        return
    if isinstance(v, str):
        stops = [v]
    elif isinstance(v, (list, tuple)):
        if len(v) > limits.max_stop:
            raise _invalid("stop", f"'stop' has {len(v)} sequences, at most {limits.max_stop} are allowed")
        if not all(isinstance(e, str) for e in v):
            raise _invalid("stop", "'stop' must be a string or an array of strings")
        stops = list(v)
    else:
        raise _invalid("stop", "'stop' must be a string or an array of strings")
    for stop in stops:
        if not stop:
            raise _invalid("stop", "'stop' sequences must not be empty")
        if len(stop.encode("utf-8", "surrogatepass")) > MAX_STOP_CHARS:
            raise _invalid("stop", f"'stop' sequences are limited to {MAX_STOP_CHARS} bytes")
    s.stop = stops


def _parse_logit_bias(f, limits, s):
    v = f.get("logit_bias")
    if v is None:
        return
    if not isinstance(v, dict):
        raise _invalid("logit_bias", "'logit_bias' must be an object")
    if len(v) > limits.max_logit_bias:
        raise _invalid("logit_bias", f"'logit_bias' has {len(v)} entries, at most {limits.max_logit_bias} are allowed")
    bias = {}
    for key, value in v.items():
        skey = str(key) if _is_int(key) else key  # Python callers may use int keys
        ok = isinstance(skey, str) and skey.isascii() and skey.isdigit()
        tid = int(skey) if ok else -1
        if not ok or (limits.n_vocab > 0 and tid >= limits.n_vocab):
            raise _invalid("logit_bias", f"'logit_bias' keys must be token ids in [0, {limits.n_vocab}), got '{key}'")
        if not _is_number(value) or not math.isfinite(value) or value < -100 or value > 100:
            raise _invalid("logit_bias", "'logit_bias' values must be numbers between -100 and 100")
        bias[tid] = float(value)
    s.logit_bias = bias


def _parse_sampling(f, limits, s):
    s.temperature = f.number("temperature", 0, 2, s.temperature)
    s.top_p = f.number("top_p", 0, 1, s.top_p)
    s.presence_penalty = f.number("presence_penalty", -2, 2, s.presence_penalty)
    s.frequency_penalty = f.number("frequency_penalty", -2, 2, s.frequency_penalty)
    s.min_p = f.number("min_p", 0, 1, s.min_p)
    s.repetition_penalty = f.number("repetition_penalty", 0.01, 10, s.repetition_penalty)
    s.n = f.int("n", 1, limits.max_n, 1)
    top_k = f.int("top_k", -1, INT32_MAX, 0)
    s.top_k = 0 if top_k < 0 else top_k
    s.min_tokens = f.int("min_tokens", 0, INT32_MAX, 0)
    seed = f.get("seed")
    if seed is not None:
        s.seed = int_value(seed, "seed", INT64_MIN, INT64_MAX) % 2**64
    s.ignore_eos = f.bool("ignore_eos", s.ignore_eos)
    _parse_stop(f, limits, s)
    _parse_logit_bias(f, limits, s)
    f.string("user")
    best_of = f.get("best_of")
    if best_of is not None:
        if int_value(best_of, "best_of", 1, limits.max_n) != s.n:
            raise _unsupported("best_of", "'best_of' other than 'n' is not supported")
    st = f.get("stop_token_ids")
    if st is not None:
        if not isinstance(st, (list, tuple)) or len(st) > 64:
            raise _invalid("stop_token_ids", "'stop_token_ids' must be an array of at most 64 token ids")
        hi = limits.n_vocab - 1 if limits.n_vocab > 0 else INT32_MAX
        s.stop_token_ids = [int_value(e, "stop_token_ids", 0, hi) for e in st]


def _parse_max_tokens(f, key, s):
    x = f.int(key, 1, INT32_MAX, None)
    if x is not None:
        s.max_tokens = x


def _parse_stream_options(f, out):
    out.stream = f.bool("stream", False)
    so = f.get("stream_options")
    if so is None:
        return
    if not isinstance(so, dict):
        raise _invalid("stream_options", "'stream_options' must be an object")
    if not out.stream:
        raise _invalid("stream_options", "'stream_options' is only allowed when 'stream' is true")
    try:
        out.include_usage = _Fields(so).bool("include_usage", False)
    except BadRequestError as e:
        e.param = "stream_options.include_usage"
        raise


def _reject_unsupported(f):
    rf = f.get("response_format")
    if rf is not None:
        if not isinstance(rf, dict) or not isinstance(rf.get("type"), str):
            raise _invalid("response_format", "'response_format' must be an object with a 'type'")
        if rf["type"] != "text":
            raise _unsupported("response_format", f"'response_format' of type '{rf['type']}' is not "
                               "supported yet (structured generation, issue #7)")
    for key in ("tools", "functions"):
        t = f.get(key)
        if t is not None:
            if not isinstance(t, (list, tuple)):
                raise _invalid(key, f"'{key}' must be an array")
            if t:
                raise _unsupported(key, f"'{key}' is not supported yet (structured generation, issue #7)")
    for key in ("tool_choice", "function_call"):
        t = f.get(key)
        if t is not None and t != "none":
            raise _unsupported(key, f"'{key}' is not supported yet (structured generation, issue #7)")
    for key in ("audio", "prediction", "web_search_options"):
        if f.get(key) is not None:
            raise _unsupported(key, f"'{key}' is not supported")
    m = f.get("modalities")
    if m is not None:
        if not isinstance(m, (list, tuple)):
            raise _invalid("modalities", "'modalities' must be an array")
        if any(e != "text" for e in m):
            raise _unsupported("modalities", "only the 'text' modality is supported")


def _content_text(content, param):
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        raise _invalid(param, f"'{param}' must be a string or an array of content parts")
    parts = []
    for i, part in enumerate(content):
        pp = f"{param}[{i}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _invalid(pp, "content parts must be objects with a 'type'")
        if part["type"] != "text":
            raise _unsupported(pp, f"content parts of type '{part['type']}' are not supported (text only)")
        if not isinstance(part.get("text"), str):
            raise _invalid(pp + ".text", "a text content part needs a string 'text'")
        parts.append(part["text"])
    return "\n".join(parts)


def _as_dict(m):
    # openai's TypedDicts are dicts; pydantic models (e.g. a previous response's message) too.
    if hasattr(m, "model_dump"):
        return m.model_dump(exclude_none=True)
    return m


def _parse_message(m, i):
    param = f"messages[{i}]"
    m = _as_dict(m)
    if not isinstance(m, dict):
        raise _invalid(param, "each message must be an object")
    role = m.get("role")
    if not isinstance(role, str):
        raise _invalid(param + ".role", "each message needs a string 'role'")
    if role not in ("system", "developer", "user", "assistant", "tool"):
        raise _invalid(param + ".role", f"unknown role '{role}' (expected system, developer, user, assistant or tool)")
    msg = {"role": "system" if role == "developer" else role}
    content = m.get("content")
    has_tool_calls = m.get("tool_calls") is not None
    if content is None:
        if not (role == "assistant" and has_tool_calls):
            raise _invalid(param + ".content", "message content is required")
        msg["content"] = None
    else:
        msg["content"] = _content_text(content, param + ".content")
    name = m.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise _invalid(param + ".name", "'name' must be a string")
        msg["name"] = name
    if has_tool_calls:
        if role != "assistant" or not isinstance(m["tool_calls"], (list, tuple)):
            raise _invalid(param + ".tool_calls", "'tool_calls' must be an array on assistant messages")
        msg["tool_calls"] = list(m["tool_calls"])
    if role == "tool":
        if not isinstance(m.get("tool_call_id"), str):
            raise _invalid(param + ".tool_call_id", "tool messages need a string 'tool_call_id'")
        msg["tool_call_id"] = m["tool_call_id"]
    return msg


def _parse_messages(f, limits, out):
    v = f.get("messages")
    if v is None:
        raise _invalid("messages", "'messages' is required")
    if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
        raise _invalid("messages", "'messages' must be an array")
    v = list(v)
    if not v:
        raise _invalid("messages", "'messages' must contain at least one message")
    if len(v) > limits.max_messages:
        raise _invalid("messages", f"at most {limits.max_messages} messages are allowed")
    out.messages = [_parse_message(m, i) for i, m in enumerate(v)]


def _parse_ids(v, limits):
    hi = limits.n_vocab - 1 if limits.n_vocab > 0 else INT32_MAX
    return [int_value(e, "prompt", 0, hi) for e in v]


def _parse_prompt(f, limits, out):
    v = f.get("prompt")
    if v is None:
        raise _invalid("prompt", "'prompt' is required")
    if isinstance(v, str):
        out.prompt_text = v
        return
    if not isinstance(v, (list, tuple)) or not v:
        raise _invalid("prompt", "'prompt' must be a string, an array of token ids, or a one-element array of either")
    first = v[0]
    if _is_int(first):
        out.prompt_ids = _parse_ids(v, limits)
        return
    if len(v) != 1:
        raise _unsupported("prompt", "batches of several prompts are not supported; send one request per prompt")
    if isinstance(first, str):
        out.prompt_text = first
        return
    if isinstance(first, (list, tuple)) and first:
        out.prompt_ids = _parse_ids(first, limits)
        return
    raise _invalid("prompt", "'prompt' must be a string or token ids")


def _parse_chat_fields(f, limits, out):
    _parse_messages(f, limits, out)
    _parse_max_tokens(f, "max_tokens", out.sampling)
    _parse_max_tokens(f, "max_completion_tokens", out.sampling)
    out.sampling.logprobs = f.bool("logprobs", False)
    top = f.int("top_logprobs", 0, limits.max_top_logprobs, 0)
    if f.get("top_logprobs") is not None and not out.sampling.logprobs:
        raise _invalid("top_logprobs", "'top_logprobs' requires 'logprobs' to be true")
    out.sampling.top_logprobs = top


def _parse_completion_fields(f, limits, out):
    _parse_prompt(f, limits, out)
    out.sampling.max_tokens = 16  # OpenAI's default for legacy completions
    _parse_max_tokens(f, "max_tokens", out.sampling)
    logprobs = f.int("logprobs", 0, limits.max_top_logprobs, -1)
    if logprobs >= 0:
        out.sampling.logprobs = True
        out.sampling.top_logprobs = logprobs
    if f.bool("echo", False):
        raise _unsupported("echo", "'echo' is not supported")
    suffix = f.get("suffix")
    if suffix is not None:
        if not isinstance(suffix, str):
            raise _invalid("suffix", "'suffix' must be a string")
        if suffix:
            raise _unsupported("suffix", "'suffix' is not supported")


def parse_request(body, chat, limits):
    """body: the request as a dict of OpenAI fields. Raises BadRequestError naming the field."""
    f = _Fields(body)
    out = ParsedRequest(chat=chat)
    model = f.get("model")
    if model is None:
        raise _invalid("model", "'model' is required")
    if not isinstance(model, str):
        raise _invalid("model", "'model' must be a string")
    out.model = model
    _parse_stream_options(f, out)
    _reject_unsupported(f)
    _parse_sampling(f, limits, out.sampling)
    if chat:
        _parse_chat_fields(f, limits, out)
    else:
        _parse_completion_fields(f, limits, out)
    s = out.sampling
    if s.max_tokens > 0 and s.min_tokens > s.max_tokens:
        raise _invalid("min_tokens", "'min_tokens' must not exceed 'max_tokens'")
    return out
