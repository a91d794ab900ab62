"""pieces_os_client: a typed client for the Pieces OS Conversations API.

Importing the package is cheap: every public name below is loaded on first use (PEP 562),
models included, so ``pieces_os_client.Configuration``, ``pieces_os_client.ConversationsApi``
and ``pieces_os_client.SeededConversation`` all work without importing everything up front.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List

from pieces_os_client._version import __version__

if TYPE_CHECKING:
    from pieces_os_client.api.conversations_api import ConversationsApi
    from pieces_os_client.api_client import ApiClient
    from pieces_os_client.api_response import ApiResponse
    from pieces_os_client.configuration import Configuration
    from pieces_os_client.exceptions import (
        ApiAttributeError,
        ApiConnectionError,
        ApiException,
        ApiKeyError,
        ApiTimeoutError,
        ApiTypeError,
        ApiValueError,
        BadRequestException,
        ConflictException,
        ForbiddenException,
        NotFoundException,
        OpenApiException,
        ResponseFormatError,
        ServiceException,
        StreamClosedError,
        StreamError,
        TooManyRequestsException,
        UnauthorizedException,
        UnprocessableEntityException,
    )
    from pieces_os_client.models import *
    from pieces_os_client.stream import ConversationIdsMirror, IdentifiersStream

_EXCEPTIONS = (
    "ApiAttributeError", "ApiConnectionError", "ApiException", "ApiKeyError", "ApiTimeoutError",
    "ApiTypeError", "ApiValueError", "BadRequestException", "ConflictException", "ForbiddenException",
    "NotFoundException", "OpenApiException", "ResponseFormatError", "ServiceException",
    "StreamClosedError", "StreamError", "TooManyRequestsException", "UnauthorizedException",
    "UnprocessableEntityException",
)

#: public name -> module that defines it (models are resolved through pieces_os_client.models)
_LOCATIONS: Dict[str, str] = {
    "ConversationsApi": "pieces_os_client.api.conversations_api",
    "ApiClient": "pieces_os_client.api_client",
    "ApiResponse": "pieces_os_client.api_response",
    "Configuration": "pieces_os_client.configuration",
    "IdentifiersStream": "pieces_os_client.stream",
    "ConversationIdsMirror": "pieces_os_client.stream",
    **{name: "pieces_os_client.exceptions" for name in _EXCEPTIONS},
}

__all__: List[str] = ["__version__", *_LOCATIONS]


def __getattr__(name: str) -> Any:
    import importlib

    module_name = _LOCATIONS.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name), name)
    else:
        models = importlib.import_module("pieces_os_client.models")
        try:
            value = getattr(models, name)
        except AttributeError:
            raise AttributeError(f"module 'pieces_os_client' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    models = __import__("pieces_os_client.models", fromlist=["__all__"])
    return sorted({*globals(), *__all__, *getattr(models, "__all__", ())})
