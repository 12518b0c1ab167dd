"""Result objects: the `openai` package's pydantic types when it is importable, otherwise
KilnObject, a small attribute-access wrapper over the same JSON shape (with model_dump())."""
import secrets
import string

try:  # pragma: no cover - depends on the environment
    from openai.types import Completion as _Completion, Model as _Model
    from openai.types.chat import ChatCompletion as _ChatCompletion
    from openai.types.chat import ChatCompletionChunk as _ChatCompletionChunk
    from openai.types.completion import Completion as _CompletionChunk
    HAVE_OPENAI = True
except ImportError:  # pragma: no cover
    HAVE_OPENAI = False


class KilnObject:
    """Attribute access over an OpenAI-shaped dict (used when `openai` is not installed).
    An absent field reads as None, as an unset optional field of openai's pydantic types does."""

    def __init__(self, data):
        self._data = data

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _wrap(self._data.get(name))

    def __getitem__(self, key):
        return _wrap(self._data[key])

    def model_dump(self, **_):
        return self._data

    def __eq__(self, other):
        return isinstance(other, KilnObject) and other._data == self._data

    def __repr__(self):
        return f"KilnObject({self._data!r})"


def _wrap(v):
    if isinstance(v, dict):
        return KilnObject(v)
    if isinstance(v, list):
        return [_wrap(e) for e in v]
    return v


def _make(kind, data):
    if not HAVE_OPENAI:
        return KilnObject(data)
    cls = {"chat": _ChatCompletion, "chat_chunk": _ChatCompletionChunk, "completion": _Completion,
           "completion_chunk": _CompletionChunk, "model": _Model}[kind]
    if kind == "completion_chunk":
        # openai's Completion type has no None finish_reason, yet its own client yields chunks
        # with one (built without validation); validate a filled copy, then restore None.
        open_choices = [i for i, c in enumerate(data["choices"]) if c["finish_reason"] is None]
        for i in open_choices:
            data["choices"][i]["finish_reason"] = "stop"
        obj = cls.model_validate(data)
        for i in open_choices:
            obj.choices[i].finish_reason = None
        return obj
    return cls.model_validate(data)


_ALNUM = string.ascii_letters + string.digits


def new_id(chat):
    """OpenAI's id shape: "chatcmpl-"/"cmpl-" + 24 alphanumerics, as server/protocol does."""
    return ("chatcmpl-" if chat else "cmpl-") + "".join(secrets.choice(_ALNUM) for _ in range(24))


def openai_finish_reason(reason):
    """kiln finish reasons → OpenAI's enum ("abort" is reported as "stop")."""
    return "length" if reason == "length" else "stop"


def usage_dict(usage):
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {
                "accepted_prediction_tokens": usage.accepted_tokens,
                "rejected_prediction_tokens": usage.drafted_tokens - usage.accepted_tokens}}


def _text(b):
    return b.decode("utf-8", errors="replace")


def _top(entry):
    return [{"token": _text(t.bytes), "logprob": t.logprob, "bytes": list(t.bytes)} for t in entry.top]


def chat_logprobs(entries):
    return {"content": [{"token": _text(e.token.bytes), "logprob": e.token.logprob,
                         "bytes": list(e.token.bytes), "top_logprobs": _top(e)} for e in entries],
            "refusal": None}


def legacy_logprobs(entries, text_offset):
    tokens, lps, tops, offsets = [], [], [], []
    for e in entries:
        tokens.append(_text(e.token.bytes))
        lps.append(e.token.logprob)
        tops.append({_text(t.bytes): t.logprob for t in e.top})
        offsets.append(text_offset)
        text_offset += len(e.token.bytes)
    return {"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets}


def completion(meta, choices, usage, want_logprobs):
    """choices: list of (text, logprob entries, kiln finish reason, tool calls); tool calls None
    for a text answer, else a list of (id, name, arguments) tuples (maybe empty or cut short):
    then content is None; the reason is "tool_calls" when the envelope was complete."""
    out = []
    for i, (text, entries, reason, calls) in enumerate(choices):
        if meta["chat"]:
            c = {"index": i, "message": {"role": "assistant", "content": text},
                 "finish_reason": openai_finish_reason(reason),
                 "logprobs": chat_logprobs(entries) if want_logprobs else None}
            if calls is not None:
                c["message"]["content"] = None
            if calls:
                c["message"]["tool_calls"] = [
                    {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                    for cid, name, args in calls]
            if reason == "tool_calls":
                c["finish_reason"] = "tool_calls"
        else:
            c = {"index": i, "text": text, "finish_reason": openai_finish_reason(reason),
                 "logprobs": legacy_logprobs(entries, 0) if want_logprobs else None}
        out.append(c)
    data = {"id": meta["id"], "object": "chat.completion" if meta["chat"] else "text_completion",
            "created": meta["created"], "model": meta["model"], "choices": out,
            "usage": usage_dict(usage), "system_fingerprint": meta["fingerprint"]}
    return _make("chat" if meta["chat"] else "completion", data)


def _chunk(meta, choices, usage=None):
    data = {"id": meta["id"], "created": meta["created"], "model": meta["model"],
            "object": "chat.completion.chunk" if meta["chat"] else "text_completion",
            "choices": choices, "system_fingerprint": meta["fingerprint"]}
    if usage is not None:
        data["usage"] = usage
    return _make("chat_chunk" if meta["chat"] else "completion_chunk", data)


def role_chunk(meta, choice):
    return _chunk(meta, [{"index": choice, "delta": {"role": "assistant", "content": ""},
                          "logprobs": None, "finish_reason": None}])


def event_chunk(meta, event, text, want_logprobs, text_offset):
    reason = openai_finish_reason(event.finish_reason) if event.finish_reason else None
    if meta["chat"]:
        delta = {"content": text} if (text or not reason) else {}
        c = {"index": event.choice, "delta": delta, "finish_reason": reason,
             "logprobs": chat_logprobs(event.logprobs) if want_logprobs and event.logprobs else None}
    else:
        c = {"index": event.choice, "text": text, "finish_reason": reason,
             "logprobs": legacy_logprobs(event.logprobs, text_offset)
             if want_logprobs and event.logprobs else None}
    return _chunk(meta, [c])


def tool_chunk(meta, choice, content, calls, reason, logprobs):
    """A chat chunk of a request with tools: content and/or tool-call deltas as OpenAI streams
    them (calls: (index, id or None, name or None, arguments fragment) from the parser)."""
    delta = {}
    if content:
        delta["content"] = content
    if calls:
        items = []
        for index, cid, name, args in calls:
            item = {"index": index}
            fn = {"arguments": args}
            if cid is not None:
                item["id"], item["type"] = cid, "function"
            if name is not None:
                fn = {"name": name, "arguments": args}
            item["function"] = fn
            items.append(item)
        delta["tool_calls"] = items
    c = {"index": choice, "delta": delta, "finish_reason": reason,
         "logprobs": chat_logprobs(logprobs) if logprobs else None}
    return _chunk(meta, [c])


def usage_chunk(meta, usage):
    return _chunk(meta, [], usage_dict(usage))


def model_list(model_id, created):
    data = [{"id": model_id, "object": "model", "created": created, "owned_by": "kiln"}]
    items = [_make("model", d) for d in data]
    return KilnObject({"object": "list", "data": data}) if not HAVE_OPENAI else _ModelList(items)


class _ModelList:
    """openai's client returns a page object; this mirrors its `.data` and iteration."""

    def __init__(self, items):
        self.object = "list"
        self.data = items

    def __iter__(self):
        return iter(self.data)
