"""pieces_os_client: a typed client for the Pieces OS Conversations API.

Importing the package is cheap: every public name below is loaded on first use (PEP 562),
models included, so ``pieces_os_client.Configuration``, ``pieces_os_client.ConversationsApi``
and ``pieces_os_client.SeededConversation`` all work without importing everything up front.
First use is safe from any number of threads at once: see ``pieces_os_client._lazy`` for the
lock every lazy load and model build goes through.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

from pieces_os_client._version import __version__

if TYPE_CHECKING:
    from pieces_os_client.aio._api import (
        AsyncConversationsApi as AsyncConversationsApi,
    )
    from pieces_os_client.aio._client import (
        AsyncApiClient as AsyncApiClient,
    )
    from pieces_os_client.api.conversations_api import (
        ConversationsApi as ConversationsApi,
    )
    from pieces_os_client.api_client import (
        ApiClient as ApiClient,
    )
    from pieces_os_client.api_response import (
        ApiResponse as ApiResponse,
    )
    from pieces_os_client.configuration import (
        Configuration as Configuration,
    )
    from pieces_os_client.exceptions import (
        ApiAttributeError as ApiAttributeError,
    )
    from pieces_os_client.exceptions import (
        ApiConnectionError as ApiConnectionError,
    )
    from pieces_os_client.exceptions import (
        ApiException as ApiException,
    )
    from pieces_os_client.exceptions import (
        ApiKeyError as ApiKeyError,
    )
    from pieces_os_client.exceptions import (
        ApiTimeoutError as ApiTimeoutError,
    )
    from pieces_os_client.exceptions import (
        ApiTypeError as ApiTypeError,
    )
    from pieces_os_client.exceptions import (
        ApiValueError as ApiValueError,
    )
    from pieces_os_client.exceptions import (
        BadRequestException as BadRequestException,
    )
    from pieces_os_client.exceptions import (
        ConflictException as ConflictException,
    )
    from pieces_os_client.exceptions import (
        ForbiddenException as ForbiddenException,
    )
    from pieces_os_client.exceptions import (
        NotFoundException as NotFoundException,
    )
    from pieces_os_client.exceptions import (
        OpenApiException as OpenApiException,
    )
    from pieces_os_client.exceptions import (
        ResponseFormatError as ResponseFormatError,
    )
    from pieces_os_client.exceptions import (
        ResponseTooLargeError as ResponseTooLargeError,
    )
    from pieces_os_client.exceptions import (
        ServiceException as ServiceException,
    )
    from pieces_os_client.exceptions import (
        StreamClosedError as StreamClosedError,
    )
    from pieces_os_client.exceptions import (
        StreamError as StreamError,
    )
    from pieces_os_client.exceptions import (
        TooManyRequestsException as TooManyRequestsException,
    )
    from pieces_os_client.exceptions import (
        UnauthorizedException as UnauthorizedException,
    )
    from pieces_os_client.exceptions import (
        UnprocessableEntityException as UnprocessableEntityException,
    )
    from pieces_os_client.models import *
    from pieces_os_client.stream import (
        ConversationIdsMirror as ConversationIdsMirror,
    )
    from pieces_os_client.stream import (
        IdentifiersStream as IdentifiersStream,
    )
    from pieces_os_client.stream import (
        MirrorUpdate as MirrorUpdate,
    )
    from pieces_os_client.stream import (
        StreamEvent as StreamEvent,
    )

_EXCEPTIONS = (
    "ApiAttributeError", "ApiConnectionError", "ApiException", "ApiKeyError", "ApiTimeoutError",
    "ApiTypeError", "ApiValueError", "BadRequestException", "ConflictException", "ForbiddenException",
    "NotFoundException", "OpenApiException", "ResponseFormatError", "ResponseTooLargeError", "ServiceException",
    "StreamClosedError", "StreamError", "TooManyRequestsException", "UnauthorizedException",
    "UnprocessableEntityException",
)

#: public name -> module that defines it (models are resolved through pieces_os_client.models)
_LOCATIONS: Dict[str, str] = {
    "ConversationsApi": "pieces_os_client.api.conversations_api",
    # the asyncio client, imported only when asked for
    "AsyncApiClient": "pieces_os_client.aio._client",
    "AsyncConversationsApi": "pieces_os_client.aio._api",
    "ApiClient": "pieces_os_client.api_client",
    "ApiResponse": "pieces_os_client.api_response",
    "Configuration": "pieces_os_client.configuration",
    "IdentifiersStream": "pieces_os_client.stream",
    "ConversationIdsMirror": "pieces_os_client.stream",
    "StreamEvent": "pieces_os_client.stream",
    "MirrorUpdate": "pieces_os_client.stream",
    **{name: "pieces_os_client.exceptions" for name in _EXCEPTIONS},
}

__all__: List[str] = ["__version__", *_LOCATIONS]


def __getattr__(name: str) -> Any:
    # The loading lock and its contract; imported here so that the bare import stays minimal.
    lazy = importlib.import_module("pieces_os_client._lazy")
    module_name = _LOCATIONS.get(name)
    if module_name is None:
        models = importlib.import_module("pieces_os_client.models")
        if name not in models._MODULES:
            raise AttributeError(f"module 'pieces_os_client' has no attribute {name!r}")
        module_name = "pieces_os_client.models"
    value = lazy.load(module_name, name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    models = __import__("pieces_os_client.models", fromlist=["__all__"])
    return sorted({*globals(), *__all__, *getattr(models, "__all__", ())})
