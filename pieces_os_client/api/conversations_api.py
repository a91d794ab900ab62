"""The Conversations API: the six endpoints of Pieces OS's /conversations resource.

Each HTTP operation comes in the three official forms, all through
:meth:`ApiClient.call_operation`:

* ``op(...)`` returns the parsed body;
* ``op_with_http_info(...)`` returns an :class:`ApiResponse` (status, headers, data, raw bytes);
* ``op_without_preload_content(...)`` returns the unread urllib3 response.

``conversations_stream_identifiers()`` opens the identifiers WebSocket and returns an
:class:`~pieces_os_client.stream.IdentifiersStream`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union, cast

from typing_extensions import Unpack

from pieces_os_client.api_client import ApiClient, Operation, RequestOptions
from pieces_os_client.api_response import ApiResponse
from pieces_os_client.exceptions import ApiTypeError

if TYPE_CHECKING:
    import urllib3

    from pieces_os_client.models.conversation import Conversation
    from pieces_os_client.models.conversations import Conversations
    from pieces_os_client.models.conversations_create_from_asset_output import (
        ConversationsCreateFromAssetOutput,
    )
    from pieces_os_client.models.flattened_conversations import FlattenedConversations
    from pieces_os_client.models.seeded_conversation import SeededConversation
    from pieces_os_client.stream import CloseCallback, ErrorCallback, IdentifiersStream, MessageCallback

__all__ = ["ConversationsApi"]

_FAILURE = {"500": None}

CREATE_FROM_ASSET = Operation(
    "POST", "/conversations/create/from_asset/{asset}",
    {"200": "ConversationsCreateFromAssetOutput", **_FAILURE},
)
CREATE = Operation(
    "POST", "/conversations/create", {"200": "Conversation", **_FAILURE}, content_types=("application/json",),
)
DELETE = Operation("POST", "/conversations/{conversation}/delete", {"204": None, **_FAILURE}, accept=("text/plain",))
IDENTIFIERS = Operation("GET", "/conversations/identifiers", {"200": "FlattenedConversations", **_FAILURE})
SNAPSHOT = Operation("GET", "/conversations", {"200": "Conversations", **_FAILURE})
STREAM_PATH = "/conversations/stream/identifiers"

IdLike = Union[str, uuid.UUID]


class ConversationsApi:
    """Create, list, snapshot, delete and stream Pieces OS conversations."""

    def __init__(self, api_client: Optional[ApiClient] = None) -> None:
        if api_client is not None and not isinstance(api_client, ApiClient):
            hint = (
                " (wrap it: ConversationsApi(ApiClient(configuration)))"
                if type(api_client).__name__ == "Configuration" else ""
            )
            raise ApiTypeError(
                f"ConversationsApi takes an ApiClient (or nothing, for the default one), not "
                f"{type(api_client).__name__}{hint}"
            )
        self.api_client = api_client if api_client is not None else ApiClient.get_default()

    # ------------------------------------------------------------ create from asset
    def conversations_create_from_asset(
        self, asset: IdLike, **options: Unpack[RequestOptions]
    ) -> ConversationsCreateFromAssetOutput:
        """/conversations/create/from_asset/{asset} [POST]

        Start a conversation grounded on an asset: Pieces OS adds a first message that
        summarizes the asset. ``asset`` is the asset's id (a str or ``uuid.UUID``).
        """
        return self.conversations_create_from_asset_with_http_info(asset, **options).data

    def conversations_create_from_asset_with_http_info(
        self, asset: IdLike, **options: Unpack[RequestOptions]
    ) -> ApiResponse[ConversationsCreateFromAssetOutput]:
        """As :meth:`conversations_create_from_asset`, with status, headers and raw bytes."""
        return cast("ApiResponse[ConversationsCreateFromAssetOutput]", self._create_from_asset(asset, options, True))

    def conversations_create_from_asset_without_preload_content(
        self, asset: IdLike, **options: Unpack[RequestOptions]
    ) -> urllib3.BaseHTTPResponse:
        """As :meth:`conversations_create_from_asset`, returning the unread HTTP response."""
        return cast("urllib3.BaseHTTPResponse", self._create_from_asset(asset, options, False))

    def _create_from_asset(self, asset: IdLike, options: RequestOptions, preload: bool) -> Any:
        return self.api_client.call_operation(
            CREATE_FROM_ASSET, options, path_params={"asset": asset}, preload_content=preload
        )

    # ------------------------------------------------------------ create
    def conversations_create_specific_conversation(
        self,
        transferables: Optional[bool] = None,
        seeded_conversation: Union[SeededConversation, Dict[str, Any], None] = None,
        **options: Unpack[RequestOptions],
    ) -> Conversation:
        """/conversations/create [POST]

        Create a conversation. ``seeded_conversation`` (a ``SeededConversation`` or a dict
        of its fields) seeds name, messages and context; ``transferables=False`` asks for
        a lighter response without the transferable content.
        """
        return self.conversations_create_specific_conversation_with_http_info(
            transferables, seeded_conversation, **options
        ).data

    def conversations_create_specific_conversation_with_http_info(
        self,
        transferables: Optional[bool] = None,
        seeded_conversation: Union[SeededConversation, Dict[str, Any], None] = None,
        **options: Unpack[RequestOptions],
    ) -> ApiResponse[Conversation]:
        """As :meth:`conversations_create_specific_conversation`, with status, headers and raw bytes."""
        return cast("ApiResponse[Conversation]", self._create(transferables, seeded_conversation, options, True))

    def conversations_create_specific_conversation_without_preload_content(
        self,
        transferables: Optional[bool] = None,
        seeded_conversation: Union[SeededConversation, Dict[str, Any], None] = None,
        **options: Unpack[RequestOptions],
    ) -> urllib3.BaseHTTPResponse:
        """As :meth:`conversations_create_specific_conversation`, returning the unread HTTP response."""
        return cast("urllib3.BaseHTTPResponse", self._create(transferables, seeded_conversation, options, False))

    def _create(self, transferables: Optional[bool], seeded: Any, options: RequestOptions, preload: bool) -> Any:
        body = None
        if seeded is not None:
            from pieces_os_client.models.seeded_conversation import SeededConversation

            body = _as_model(SeededConversation, seeded, "seeded_conversation")
        return self.api_client.call_operation(
            CREATE, options, query_params=_transferables(transferables), body=body, preload_content=preload
        )

    # ------------------------------------------------------------ delete
    def conversations_delete_specific_conversation(
        self, conversation: IdLike, **options: Unpack[RequestOptions]
    ) -> None:
        """/conversations/{conversation}/delete [POST]

        Delete a conversation by id. Returns None (the server answers 204).
        """
        self.conversations_delete_specific_conversation_with_http_info(conversation, **options)

    def conversations_delete_specific_conversation_with_http_info(
        self, conversation: IdLike, **options: Unpack[RequestOptions]
    ) -> ApiResponse[None]:
        """As :meth:`conversations_delete_specific_conversation`, with status and headers."""
        return cast("ApiResponse[None]", self._delete(conversation, options, True))

    def conversations_delete_specific_conversation_without_preload_content(
        self, conversation: IdLike, **options: Unpack[RequestOptions]
    ) -> urllib3.BaseHTTPResponse:
        """As :meth:`conversations_delete_specific_conversation`, returning the unread HTTP response."""
        return cast("urllib3.BaseHTTPResponse", self._delete(conversation, options, False))

    def _delete(self, conversation: IdLike, options: RequestOptions, preload: bool) -> Any:
        return self.api_client.call_operation(
            DELETE, options, path_params={"conversation": conversation}, preload_content=preload
        )

    # ------------------------------------------------------------ identifiers
    def conversations_identifiers_snapshot(self, **options: Unpack[RequestOptions]) -> FlattenedConversations:
        """/conversations/identifiers [GET]

        The ids of every conversation (``.iterable[i].id``), cheap to fetch.
        """
        return self.conversations_identifiers_snapshot_with_http_info(**options).data

    def conversations_identifiers_snapshot_with_http_info(
        self, **options: Unpack[RequestOptions]
    ) -> ApiResponse[FlattenedConversations]:
        """As :meth:`conversations_identifiers_snapshot`, with status, headers and raw bytes."""
        return cast("ApiResponse[FlattenedConversations]", self.api_client.call_operation(IDENTIFIERS, options))

    def conversations_identifiers_snapshot_without_preload_content(
        self, **options: Unpack[RequestOptions]
    ) -> urllib3.BaseHTTPResponse:
        """As :meth:`conversations_identifiers_snapshot`, returning the unread HTTP response."""
        return cast("urllib3.BaseHTTPResponse",
                    self.api_client.call_operation(IDENTIFIERS, options, preload_content=False))

    # ------------------------------------------------------------ snapshot
    def conversations_snapshot(
        self, transferables: Optional[bool] = None, **options: Unpack[RequestOptions]
    ) -> Conversations:
        """/conversations [GET]

        Every conversation, fully referenced. ``transferables=False`` leaves out the
        transferable content for a faster, smaller answer.
        """
        return self.conversations_snapshot_with_http_info(transferables, **options).data

    def conversations_snapshot_with_http_info(
        self, transferables: Optional[bool] = None, **options: Unpack[RequestOptions]
    ) -> ApiResponse[Conversations]:
        """As :meth:`conversations_snapshot`, with status, headers and raw bytes."""
        return cast("ApiResponse[Conversations]", self.api_client.call_operation(
            SNAPSHOT, options, query_params=_transferables(transferables)))

    def conversations_snapshot_without_preload_content(
        self, transferables: Optional[bool] = None, **options: Unpack[RequestOptions]
    ) -> urllib3.BaseHTTPResponse:
        """As :meth:`conversations_snapshot`, returning the unread HTTP response."""
        return cast("urllib3.BaseHTTPResponse", self.api_client.call_operation(
            SNAPSHOT, options, query_params=_transferables(transferables), preload_content=False))

    # ------------------------------------------------------------ stream
    def conversations_stream_identifiers(
        self,
        *,
        on_message: Optional[MessageCallback] = None,
        on_error: Optional[ErrorCallback] = None,
        on_close: Optional[CloseCallback] = None,
        _headers: Optional[Dict[str, Any]] = None,
        **stream_options: Any,
    ) -> IdentifiersStream:
        """/conversations/stream/identifiers [WS]

        Open the identifiers WebSocket. Iterate the returned stream for typed
        ``StreamedIdentifiers`` messages, or pass callbacks to run it in a background
        thread. See docs/streaming.md.
        """
        from pieces_os_client.stream import IdentifiersStream
        from pieces_os_client.stream._options import reject_taken

        reject_taken(stream_options, {"headers": "pass handshake headers as _headers=",
                                      "path": "this method opens the identifiers path"},
                     "conversations_stream_identifiers()")
        return IdentifiersStream(
            self.api_client, STREAM_PATH, headers=_headers,
            on_message=on_message, on_error=on_error, on_close=on_close, **stream_options,
        )


def _transferables(value: Optional[bool]) -> List[Tuple[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, bool):
        raise ApiTypeError(f"transferables must be a bool, not {type(value).__name__} ({value!r})")
    return [("transferables", value)]


def _as_model(model: Any, value: Any, name: str) -> Any:
    import pydantic

    from pieces_os_client.exceptions import ApiValueError

    if isinstance(value, model):
        return value
    if isinstance(value, dict):
        try:
            return model.model_validate(value)
        except pydantic.ValidationError as exc:
            raise ApiValueError(f"{name} is not a valid {model.__name__}: {exc}") from exc
    raise ApiTypeError(f"{name} must be a {model.__name__} or a dict, not {type(value).__name__}")
