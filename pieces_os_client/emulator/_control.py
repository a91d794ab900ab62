"""The ``/__emulator__/`` control endpoints: the emulator's public methods, over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Mapping, Optional, Tuple

from aiohttp import web

from ._bodies import load_json
from ._faults import BREAK_MODES, short_repr
from ._http import CONTROL_PREFIX, read_body
from ._store import StoreError, asset_from_json

if TYPE_CHECKING:
    from ._server import Emulator

__all__ = ["Control"]

# The settings each control endpoint takes in its JSON body; any other name is refused.
# Endpoints not listed take none, except POST assets, whose body is an asset in any form.
_CONTROL_SETTINGS: Dict[str, Tuple[str, ...]] = {
    "faults/fail": ("status", "count", "body", "retry_after", "method", "path"),
    "faults/delay": ("seconds", "count", "method", "path"),
    "faults/break": ("mode", "count", "method", "path"),
    "faults/stall-body": ("seconds", "after_bytes", "count", "method", "path"),
}
_FREE_FORM_CONTROL = ("assets",)

_Handler = Callable[[Dict[str, Any]], Awaitable[Any]]


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check_settings(method: str, endpoint: str, payload: Mapping[str, Any]) -> None:
    """Refuse any setting a control endpoint does not know, naming it and the valid ones."""
    allowed = _CONTROL_SETTINGS.get(endpoint, ())
    unknown = [key for key in payload if key not in allowed]
    if unknown:
        names = ", ".join(short_repr(key) for key in unknown[:5])
        expected = f"expected {', '.join(allowed)}" if allowed else "it takes none"
        raise ValueError(f"unknown setting {names} for {method} {CONTROL_PREFIX}{endpoint}; {expected}")


class Control:
    """Answers ``/__emulator__/...`` requests (on the emulator's loop) by calling ``emulator``."""

    def __init__(self, emulator: Emulator, max_request_size: Optional[int]) -> None:
        self._max_request_size = max_request_size
        self._routes = self._make_routes(emulator)

    async def handle(self, request: web.BaseRequest, method: str, name: str) -> web.StreamResponse:
        try:
            endpoint = name.rstrip("/")
            # HEAD is answered as GET is, and aiohttp sends no body with it.
            handler = self._routes.get(("GET" if method == "HEAD" else method, endpoint))
            if handler is None:
                return web.json_response({"error": f"unknown control endpoint {method} {short_repr(name)}"}, status=404)
            payload: Dict[str, Any] = {}
            if method in ("POST", "PUT"):
                body = await read_body(request, self._max_request_size)
                if body.strip():
                    try:
                        # Non-finite numbers come through so the setting they were given for
                        # is named when it is refused.
                        loaded = load_json(body, finite=False)
                    except ValueError as exc:
                        raise ValueError(f"invalid request body: {exc}") from None
                    if not isinstance(loaded, dict):
                        raise ValueError(f"the body must be a JSON object, not {_json_type(loaded)}")
                    payload = loaded
            if endpoint not in _FREE_FORM_CONTROL:
                _check_settings(method, endpoint, payload)
            result = await handler(payload)
        except (ValueError, TypeError, KeyError, StoreError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if result is None:
            return web.Response(status=204)
        return web.json_response(result)

    @staticmethod
    def _make_routes(emulator: Emulator) -> Dict[Tuple[str, str], _Handler]:
        def count_of(payload: Mapping[str, Any]) -> Any:
            return payload.get("count", 1)  # validated, with the other settings, by the fault book

        async def reset(payload: Dict[str, Any]) -> None:
            emulator.reset()

        async def fail(payload: Dict[str, Any]) -> None:
            emulator.fail_next(
                payload.get("status", 500),
                count_of(payload),
                body=payload.get("body"),
                retry_after=payload.get("retry_after"),
                method=payload.get("method"),
                path=payload.get("path"),
            )

        async def delay(payload: Dict[str, Any]) -> None:
            if "seconds" not in payload:
                raise ValueError("'seconds' is required: how long to hold each matching request")
            emulator.delay_next(
                payload["seconds"], count_of(payload), method=payload.get("method"), path=payload.get("path")
            )

        async def break_(payload: Dict[str, Any]) -> None:
            mode = payload.get("mode")
            if not isinstance(mode, str):
                raise ValueError(f"'mode' is required: one of {', '.join(BREAK_MODES)}")
            emulator.break_next(mode, count_of(payload), method=payload.get("method"), path=payload.get("path"))

        async def stall_body(payload: Dict[str, Any]) -> None:
            if "seconds" not in payload:
                raise ValueError("'seconds' is required: how long to stall each matching response's body")
            emulator.stall_body_next(
                payload["seconds"],
                count_of(payload),
                after_bytes=payload.get("after_bytes", 0),
                method=payload.get("method"),
                path=payload.get("path"),
            )

        async def clear_faults(payload: Dict[str, Any]) -> None:
            emulator.clear_faults()

        async def faults(payload: Dict[str, Any]) -> Any:
            return {"faults": emulator.pending_faults()}

        async def requests(payload: Dict[str, Any]) -> Any:
            return {"requests": [r._asdict() for r in emulator.requests]}

        async def clear_requests(payload: Dict[str, Any]) -> None:
            emulator.clear_requests()

        async def drop(payload: Dict[str, Any]) -> Any:
            return {"dropped": emulator.drop_websockets()}

        async def add_asset(payload: Dict[str, Any]) -> Any:
            record = asset_from_json(payload)
            emulator.store.add_asset(record)
            return {"id": record.id}

        async def state(payload: Dict[str, Any]) -> Any:
            return {
                "conversations": emulator.store.conversation_ids(),
                "assets": emulator.store.asset_ids(),
                "websockets": emulator.websocket_count,
                "faults": emulator.pending_faults(),
                "requests": len(emulator.requests),
            }

        return {
            ("POST", "reset"): reset,
            ("POST", "faults/fail"): fail,
            ("POST", "faults/delay"): delay,
            ("POST", "faults/break"): break_,
            ("POST", "faults/stall-body"): stall_body,
            ("POST", "faults/clear"): clear_faults,
            ("DELETE", "faults"): clear_faults,
            ("GET", "faults"): faults,
            ("GET", "requests"): requests,
            ("DELETE", "requests"): clear_requests,
            ("POST", "drop-websockets"): drop,
            ("POST", "assets"): add_asset,
            ("GET", "state"): state,
        }
