"""kiln: the kiln inference engine in-process, with the `openai` client's call shape.

    import kiln
    with kiln.Engine("default") as engine:
        r = engine.chat.completions.create(messages=[{"role": "user", "content": "Hi!"}])
        print(r.choices[0].message.content)
"""
from ._engine import AsyncEngine, AsyncStream, Engine, Stream
from ._errors import (APIError, BadRequestError, EngineClosedError, InternalServerError,
                      KilnError, NotFoundError, RateLimitError, ServiceUnavailableError)
from ._types import HAVE_OPENAI, KilnObject
__version__ = "0.1.0"

__all__ = ["Engine", "AsyncEngine", "Stream", "AsyncStream", "KilnError", "APIError",
           "BadRequestError", "NotFoundError", "RateLimitError", "InternalServerError",
           "ServiceUnavailableError", "EngineClosedError", "KilnObject", "HAVE_OPENAI"]
