"""Exceptions with OpenAI's class names and fields (message, param, code, type, status_code).

openai's own exception classes need an httpx response, so kiln defines its own; the request
errors also subclass ValueError so plain `except ValueError` works.
"""


class KilnError(Exception):
    """Base class. `param` names the offending request field (None if none)."""

    status_code = 500
    type = "server_error"

    def __init__(self, message, param=None, code=None):
        super().__init__(message)
        self.message = message
        self.param = param or None
        self.code = code or None

    @property
    def body(self):
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


APIError = KilnError


class BadRequestError(KilnError, ValueError):
    status_code = 400
    type = "invalid_request_error"


class NotFoundError(KilnError):
    status_code = 404
    type = "invalid_request_error"


class RateLimitError(KilnError):
    status_code = 429
    type = "rate_limit_exceeded"


class InternalServerError(KilnError):
    status_code = 500
    type = "server_error"


class ServiceUnavailableError(KilnError):
    status_code = 503
    type = "server_error"


class EngineClosedError(BadRequestError):
    """A call on an engine after close()."""


# kiln::StatusCode names (base/status.cc StatusCodeName) → exception class, code.
_BY_STATUS = {
    "INVALID_ARGUMENT": (BadRequestError, None),
    "OUT_OF_RANGE": (BadRequestError, None),
    "FAILED_PRECONDITION": (BadRequestError, None),
    "DATA_LOSS": (BadRequestError, None),
    "UNIMPLEMENTED": (BadRequestError, "unsupported_parameter"),
    "NOT_FOUND": (NotFoundError, "not_found"),
    "RESOURCE_EXHAUSTED": (RateLimitError, None),
    "UNAVAILABLE": (ServiceUnavailableError, None),
}


def from_status(status_error, param=None):
    """Maps kiln._core.StatusError(code_name, message) like server/protocol ErrorFromStatus."""
    code_name, message = status_error.args[0], status_error.args[1]
    if message == "the engine is closed":
        return EngineClosedError(message, param)
    cls, code = _BY_STATUS.get(str(code_name).upper(), (InternalServerError, None))
    return cls(message, param, code)


_BY_HTTP = {400: BadRequestError, 404: NotFoundError, 429: RateLimitError,
            503: ServiceUnavailableError}


def from_request_error(request_error):
    """Maps kiln._core.RequestError(http_status, message, type, param, code): the api layer's
    openai::RequestError, the same object the server sends as {"error": {...}}."""
    status, message, _type, param, code = request_error.args
    if message == "the engine is closed":
        return EngineClosedError(message, param)
    return _BY_HTTP.get(status, InternalServerError)(message, param, code)
