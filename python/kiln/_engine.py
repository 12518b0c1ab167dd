"""kiln.Engine / kiln.AsyncEngine: the engine in-process with the `openai` client's shape."""
import asyncio
import concurrent.futures
import os
import time

from . import _core, _protocol, _types
from ._errors import BadRequestError, InternalServerError, from_request_error, from_status

_POLL_MS = 100  # Next() timeout: bounds how long close() or Ctrl-C waits for a blocked reader
_OVERRIDES = ("n_threads", "max_sequences", "max_context", "kv_memory_bytes", "prefill_chunk",
              "speculate", "draft_max", "draft")
# openai client options that do not travel in the request body.
_CLIENT_ONLY = ("extra_headers", "extra_query", "timeout")


def _model_id(model):
    """The name `kiln serve` reports for a model: a file's stem, a folder's name, else as given."""
    base = os.path.basename(model.rstrip("/"))
    if model.endswith(".gguf"):
        return base[:-5]
    return base if os.path.isdir(model) else model


class _Core:
    """The extension engine plus what both front ends share: request preparation and the
    translation of stream events into OpenAI objects."""

    def __init__(self, model, mode, overrides):
        unknown = sorted(set(overrides) - set(_OVERRIDES))
        if unknown:
            raise TypeError(f"unknown engine option(s) {unknown}; known: {list(_OVERRIDES)}")
        if not isinstance(model, str):
            raise TypeError("model must be a string (a .gguf path, a folder, hf://… or 'default')")
        try:
            self.engine = _core.Engine(model, mode, **overrides)
        except _core.StatusError as e:
            raise from_status(e) from None
        self.model_id = _model_id(model)
        self.created = int(time.time())
        self.info = self.engine.info()
        self.n_vocab = self.info["n_vocab"]
        self.fingerprint = "kiln-" + (self.info["architecture"] or "model")

    def call(self, fn, *args):
        try:
            return fn(*args)
        except _core.StatusError as e:
            raise from_status(e) from None

    def prepare(self, chat, body):
        """Validates the request and submits it; returns a _Request."""
        body = dict(body)
        extra = body.pop("extra_body", None) or {}
        for key in _CLIENT_ONLY:
            body.pop(key, None)
        body.update(extra)
        body.setdefault("model", self.model_id)
        req = _protocol.parse_request(body, chat, self.n_vocab)
        # Template (+ tools), tokens, constraint check and submit: the server's code path.
        try:
            stream = self.engine.submit_request(req)
        except _core.RequestError as e:
            raise from_request_error(e) from None
        except _core.StatusError as e:
            raise from_status(e) from None
        meta = {"chat": chat, "id": _types.new_id(chat), "created": int(time.time()),
                "model": req.model, "fingerprint": self.fingerprint}
        return _Request(req, meta, stream)

    def metrics(self):
        m = self.call(self.engine.metrics)
        return {name: getattr(m, name) for name in dir(m) if not name.startswith("_")}


class _Request:
    def __init__(self, parsed, meta, stream):
        self.parsed = parsed
        self.meta = meta
        self.stream = stream
        self.sampling = parsed.sampling
        self.want_logprobs = self.sampling.logprobs
        self.n = self.sampling.n
        self.tools = parsed.tools_active and meta["chat"]
        self.parsers = {}
        self.started = set()
        self.offsets = {}
        self.texts, self.entries, self.reasons = {}, {}, {}
        self.usage = None

    def chunks(self, e):
        """The OpenAI chunks one stream event becomes."""
        if e.finish_reason == "error":
            raise InternalServerError(e.error or "the engine failed the request")
        out = []
        text = e.text.decode("utf-8", errors="replace")
        if self.meta["chat"] and e.choice not in self.started and (text or e.finish_reason):
            out.append(_types.role_chunk(self.meta, e.choice))
            self.started.add(e.choice)
        if self.tools:
            parser = self.parsers.setdefault(e.choice, _core.ToolCallParser(True))
            content, calls = parser.feed(e.text)
            content = content.decode("utf-8", errors="replace")
            reason = None
            if e.finish_reason:
                reason = "tool_calls" if parser.is_tool_call() else \
                    _types.openai_finish_reason(e.finish_reason)
            if content or calls or reason or (self.want_logprobs and e.logprobs):
                out.append(_types.tool_chunk(self.meta, e.choice, content, calls, reason,
                                             e.logprobs if self.want_logprobs else None))
        elif text or e.finish_reason or (self.want_logprobs and e.logprobs):
            offset = self.offsets.get(e.choice, 0)
            out.append(_types.event_chunk(self.meta, e, text, self.want_logprobs, offset))
            self.offsets[e.choice] = offset + len(e.text)
        if e.done and self.parsed.include_usage:
            out.append(_types.usage_chunk(self.meta, e.usage))
        return out

    def accumulate(self, e):
        if e.finish_reason == "error":
            raise InternalServerError(e.error or "the engine failed the request")
        self.texts[e.choice] = self.texts.get(e.choice, b"") + e.text
        self.entries.setdefault(e.choice, []).extend(e.logprobs)
        if e.finish_reason:
            self.reasons[e.choice] = e.finish_reason
        if e.done:
            self.usage = e.usage

    def result(self):
        choices = []
        for i in range(self.n):
            raw = self.texts.get(i, b"")
            calls, reason = None, self.reasons.get(i, "stop")
            if self.tools:
                parser = _core.ToolCallParser(True)
                parser.feed(raw)
                if parser.in_envelope():  # as the stream would have sent it (kiln/tools.h)
                    calls = parser.calls()
                    if parser.is_tool_call():
                        reason = "tool_calls"
            choices.append((raw.decode("utf-8", errors="replace"), self.entries.get(i, []),
                            reason, calls))
        return _types.completion(self.meta, choices, self.usage, self.want_logprobs)


class Stream:
    """Iterator of chunks (ChatCompletionChunk / Completion). Leaving it early (break, close(),
    `with` exit, garbage collection) cancels the request and frees its KV blocks."""

    def __init__(self, request):
        self._request = request
        self._pending = []
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        while not self._pending:
            if self._done:
                raise StopIteration
            e = self._request.stream.next(_POLL_MS)
            if e is None:
                continue
            self._done = e.done
            try:
                self._pending.extend(self._request.chunks(e))
            except BaseException:
                self._done = True
                raise
        return self._pending.pop(0)

    def close(self):
        if not self._done:
            self._request.stream.cancel()
            self._done = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def id(self):
        return self._request.meta["id"]


class AsyncStream:
    """Async iterator of chunks; `break`, aclose() or `async with` exit cancels the request."""

    def __init__(self, request, executor):
        self._request = request
        self._executor = executor
        self._pending = []
        self._done = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        loop = asyncio.get_running_loop()
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            try:
                e = await loop.run_in_executor(self._executor, self._request.stream.next, _POLL_MS)
            except BaseException:  # task cancelled while waiting: the request goes too
                self.cancel()
                raise
            if e is None:
                continue
            self._done = e.done
            try:
                self._pending.extend(self._request.chunks(e))
            except BaseException:
                self._done = True
                raise
        return self._pending.pop(0)

    def cancel(self):
        if not self._done:
            self._request.stream.cancel()
            self._done = True

    async def aclose(self):
        self.cancel()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.cancel()

    def __del__(self):
        try:
            self.cancel()
        except Exception:
            pass

    @property
    def id(self):
        return self._request.meta["id"]


def _body(kwargs, **named):
    body = {k: v for k, v in named.items() if v is not None}
    body.update(kwargs)
    return body


class _Completions:
    def __init__(self, owner, chat):
        self._owner = owner
        self._chat = chat


class _SyncCompletions(_Completions):
    def create(self, *, messages=None, prompt=None, stream=False, **fields):
        """OpenAI's create(): every field the server accepts, same meaning and validation.
        Returns a ChatCompletion/Completion, or a Stream of chunks when stream=True."""
        core = self._owner._live()
        body = _body(fields, stream=stream)
        body["messages" if self._chat else "prompt"] = messages if self._chat else prompt
        request = core.prepare(self._chat, body)
        if request.parsed.stream:
            return Stream(request)
        try:
            while True:
                e = request.stream.next(_POLL_MS)
                if e is None:
                    continue
                request.accumulate(e)
                if e.done:
                    return request.result()
        except BaseException:
            request.stream.cancel()
            raise


class _AsyncCompletions(_Completions):
    async def create(self, *, messages=None, prompt=None, stream=False, **fields):
        """As Engine's create(), awaited; stream=True returns an AsyncStream."""
        core = self._owner._live()
        body = _body(fields, stream=stream)
        body["messages" if self._chat else "prompt"] = messages if self._chat else prompt
        loop = asyncio.get_running_loop()
        executor = self._owner._executor
        request = await loop.run_in_executor(executor, core.prepare, self._chat, body)
        if request.parsed.stream:
            return AsyncStream(request, executor)
        try:
            while True:
                e = await loop.run_in_executor(executor, request.stream.next, _POLL_MS)
                if e is None:
                    continue
                request.accumulate(e)
                if e.done:
                    return request.result()
        except BaseException:
            request.stream.cancel()
            raise


class _Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Models:
    def __init__(self, owner):
        self._owner = owner

    def list(self):
        core = self._owner._live()
        return _types.model_list(core.model_id, core.created)


class _AsyncModels(_Models):
    async def list(self):
        return _Models.list(self)


class _EngineBase:
    def __init__(self, model="default", mode="local", **overrides):
        self._core = _Core(model, mode, overrides)

    def _live(self):
        if self._core is None:
            raise BadRequestError("the engine is closed")
        return self._core

    @property
    def model(self):
        return self._live().model_id

    @property
    def info(self):
        """The model's description (path, architecture, n_vocab, chat_template, …)."""
        return dict(self._live().info)

    def tokenize(self, text, *, add_special=False, parse_special=False):
        """Token ids of `text` (like `kiln tokenize`: no BOS/EOS, special text plain by default)."""
        if not isinstance(text, str):
            raise BadRequestError("'text' must be a string", "text")
        core = self._live()
        return core.call(core.engine.tokenize, text, add_special, parse_special)

    def detokenize(self, ids):
        ids = list(ids)
        for i in ids:
            _protocol.int_value(i, "ids", 0, _protocol.INT32_MAX)
        core = self._live()
        return core.call(core.engine.detokenize, ids)

    def apply_chat_template(self, messages, add_generation_prompt=True):
        core = self._live()
        parsed = _protocol.parse_request({"model": core.model_id, "messages": messages}, True,
                                         core.n_vocab)
        return core.call(core.engine.apply_chat_template, parsed.messages_json, "",
                         add_generation_prompt)

    def metrics(self):
        """EngineMetrics as a dict (queue_length, running, kv_blocks_used, …)."""
        return self._live().metrics()

    def describe_config(self):
        core = self._live()
        return core.call(core.engine.describe_config)


class Engine(_EngineBase):
    """The engine in this process, called like openai.OpenAI():

        with kiln.Engine() as engine:
            r = engine.chat.completions.create(messages=[{"role": "user", "content": "Hi"}])
            print(r.choices[0].message.content)
    """

    def __init__(self, model="default", mode="local", **overrides):
        super().__init__(model, mode, **overrides)
        self.chat = _Namespace(completions=_SyncCompletions(self, True))
        self.completions = _SyncCompletions(self, False)
        self.models = _Models(self)

    def close(self):
        """Stops the engine: open streams end, its threads are joined. Idempotent."""
        core, self._core = self._core, None
        if core is not None:
            core.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class AsyncEngine(_EngineBase):
    """As Engine, with awaitable create() and async iterators; many requests run concurrently
    through the engine's continuous batching (waits run on a private thread pool, GIL released)."""

    def __init__(self, model="default", mode="local", max_waiters=256, **overrides):
        super().__init__(model, mode, **overrides)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_waiters, thread_name_prefix="kiln-async")
        self.chat = _Namespace(completions=_AsyncCompletions(self, True))
        self.completions = _AsyncCompletions(self, False)
        self.models = _AsyncModels(self)

    def close(self):
        core, self._core = self._core, None
        if core is not None:
            core.engine.close()
            self._executor.shutdown(wait=True)

    async def aclose(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
