"""The result of an ``..._with_http_info`` call: status, headers, typed data and raw bytes."""

from __future__ import annotations

from typing import Generic, Mapping, Optional, TypeVar

T = TypeVar("T")

__all__ = ["ApiResponse"]


class ApiResponse(Generic[T]):
    """What an ``op_with_http_info()`` call returns.

    ``status_code``: the HTTP status; ``headers``: the response headers; ``data``: the body
    parsed into the documented type (``None`` for 204); ``raw_data``: the body's bytes.
    """

    __slots__ = ("data", "headers", "raw_data", "status_code")

    def __init__(
        self,
        *,
        status_code: int,
        data: T,
        raw_data: bytes,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.data = data
        self.raw_data = raw_data

    def __repr__(self) -> str:
        size = len(self.raw_data)
        return f"ApiResponse(status_code={self.status_code!r}, data={self.data!r}, raw_data=<{size} bytes>)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiResponse):
            return NotImplemented
        return (self.status_code, self.headers, self.data, self.raw_data) == (
            other.status_code, other.headers, other.data, other.raw_data,
        )

    __hash__ = None  # type: ignore[assignment]
