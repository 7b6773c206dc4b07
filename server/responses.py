"""JSON responses, encoded with orjson, and the error shape every endpoint uses."""
from __future__ import annotations

import orjson
from starlette.responses import JSONResponse


class ORJSONResponse(JSONResponse):
    def render(self, content) -> bytes:
        return orjson.dumps(content)


def error(status: int, field: str, reason: str, detail: str) -> ORJSONResponse:
    """``{"errors": [{"index": null, "field", "reason", "detail"}]}`` with the given status."""
    return ORJSONResponse({"errors": [{"index": None, "field": field, "reason": reason, "detail": detail}]},
                          status_code=status)
