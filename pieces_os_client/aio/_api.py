"""AsyncConversationsApi: the Conversations API as coroutines, in the same three forms.

Every method has the name and parameters of its sync counterpart in
:class:`~pieces_os_client.ConversationsApi`; the operations, argument checks, request building
and response parsing are the sync client's own. ``op_without_preload_content`` returns an
unread :class:`~pieces_os_client.aio.AsyncResponse`: ``await resp.read()``, then ``resp.release()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Union, cast

from typing_extensions import Unpack

from pieces_os_client.aio._client import AsyncApiClient, AsyncResponse
from pieces_os_client.api.conversations_api import (
    CREATE,
    CREATE_FROM_ASSET,
    DELETE,
    IDENTIFIERS,
    SNAPSHOT,
    STREAM_PATH,
    IdLike,
    _as_model,
    _transferables,
)
from pieces_os_client.api_client import RequestOptions
from pieces_os_client.api_response import ApiResponse
from pieces_os_client.exceptions import ApiTypeError

if TYPE_CHECKING:
    from pieces_os_client.aio._stream import (  # type: ignore[import-not-found,unused-ignore]
        AsyncIdentifiersStream,
    )
    from pieces_os_client.models.conversation import Conversation
    from pieces_os_client.models.conversations import Conversations
    from pieces_os_client.models.conversations_create_from_asset_output import (
        ConversationsCreateFromAssetOutput,
    )
    from pieces_os_client.models.flattened_conversations import FlattenedConversations
    from pieces_os_client.models.seeded_conversation import SeededConversation

__all__ = ["AsyncConversationsApi"]


class AsyncConversationsApi:
    """Create, list, snapshot, delete and stream Pieces OS conversations, from asyncio code."""

    def __init__(self, api_client: AsyncApiClient) -> None:
        if not isinstance(api_client, AsyncApiClient):
            hint = (" (use pieces_os_client.ConversationsApi for a sync ApiClient)"
                    if type(api_client).__name__ == "ApiClient" else "")
            raise ApiTypeError(
                f"AsyncConversationsApi takes an AsyncApiClient, not {type(api_client).__name__}{hint}"
            )
        self.api_client = api_client

    # ------------------------------------------------------------ create from asset
    async def conversations_create_from_asset(
        self, asset: IdLike, **options: Unpack[RequestOptions]
    ) -> ConversationsCreateFromAssetOutput:
        """/conversations/create/from_asset/{asset} [POST]: a conversation grounded on an asset."""
        return (await self.conversations_create_from_asset_with_http_info(asset, **options)).data

    async def conversations_create_from_asset_with_http_info(
        self, asset: IdLike, **options: Unpack[RequestOptions]
    ) -> ApiResponse[ConversationsCreateFromAssetOutput]:
        """As :meth:`conversations_create_from_asset`, with status, headers and raw bytes."""
        return cast("ApiResponse[ConversationsCreateFromAssetOutput]",
                    await self._create_from_asset(asset, options, True))

    async def conversations_create_from_asset_without_preload_content(
        self, asset: IdLike, **options: Unpack[RequestOptions]
    ) -> AsyncResponse:
        """As :meth:`conversations_create_from_asset`, returning the unread HTTP response."""
        return cast(AsyncResponse, await self._create_from_asset(asset, options, False))

    async def _create_from_asset(self, asset: IdLike, options: RequestOptions, preload: bool) -> Any:
        return await self.api_client.call_operation(
            CREATE_FROM_ASSET, options, path_params={"asset": asset}, preload_content=preload
        )

    # ------------------------------------------------------------ create
    async def conversations_create_specific_conversation(
        self,
        transferables: Optional[bool] = None,
        seeded_conversation: Union[SeededConversation, Dict[str, Any], None] = None,
        **options: Unpack[RequestOptions],
    ) -> Conversation:
        """/conversations/create [POST]: create a conversation, seeded or empty."""
        return (await self.conversations_create_specific_conversation_with_http_info(
            transferables, seeded_conversation, **options)).data

    async def conversations_create_specific_conversation_with_http_info(
        self,
        transferables: Optional[bool] = None,
        seeded_conversation: Union[SeededConversation, Dict[str, Any], None] = None,
        **options: Unpack[RequestOptions],
    ) -> ApiResponse[Conversation]:
        """As :meth:`conversations_create_specific_conversation`, with status, headers and raw bytes."""
        return cast("ApiResponse[Conversation]", await self._create(transferables, seeded_conversation, options, True))

    async def conversations_create_specific_conversation_without_preload_content(
        self,
        transferables: Optional[bool] = None,
        seeded_conversation: Union[SeededConversation, Dict[str, Any], None] = None,
        **options: Unpack[RequestOptions],
    ) -> AsyncResponse:
        """As :meth:`conversations_create_specific_conversation`, returning the unread HTTP response."""
        return cast(AsyncResponse, await self._create(transferables, seeded_conversation, options, False))

    async def _create(self, transferables: Optional[bool], seeded: Any, options: RequestOptions, preload: bool) -> Any:
        body = None
        if seeded is not None:
            from pieces_os_client.models.seeded_conversation import SeededConversation

            body = _as_model(SeededConversation, seeded, "seeded_conversation")
        return await self.api_client.call_operation(
            CREATE, options, query_params=_transferables(transferables), body=body, preload_content=preload
        )

    # ------------------------------------------------------------ delete
    async def conversations_delete_specific_conversation(
        self, conversation: IdLike, **options: Unpack[RequestOptions]
    ) -> None:
        """/conversations/{conversation}/delete [POST]: delete a conversation by id."""
        await self.conversations_delete_specific_conversation_with_http_info(conversation, **options)

    async def conversations_delete_specific_conversation_with_http_info(
        self, conversation: IdLike, **options: Unpack[RequestOptions]
    ) -> ApiResponse[None]:
        """As :meth:`conversations_delete_specific_conversation`, with status and headers."""
        return cast("ApiResponse[None]", await self._delete(conversation, options, True))

    async def conversations_delete_specific_conversation_without_preload_content(
        self, conversation: IdLike, **options: Unpack[RequestOptions]
    ) -> AsyncResponse:
        """As :meth:`conversations_delete_specific_conversation`, returning the unread HTTP response."""
        return cast(AsyncResponse, await self._delete(conversation, options, False))

    async def _delete(self, conversation: IdLike, options: RequestOptions, preload: bool) -> Any:
        return await self.api_client.call_operation(
            DELETE, options, path_params={"conversation": conversation}, preload_content=preload
        )

    # ------------------------------------------------------------ identifiers
    async def conversations_identifiers_snapshot(self, **options: Unpack[RequestOptions]) -> FlattenedConversations:
        """/conversations/identifiers [GET]: the ids of every conversation."""
        return cast("ApiResponse[FlattenedConversations]",
                    await self.api_client.call_operation(IDENTIFIERS, options)).data

    async def conversations_identifiers_snapshot_with_http_info(
        self, **options: Unpack[RequestOptions]
    ) -> ApiResponse[FlattenedConversations]:
        """As :meth:`conversations_identifiers_snapshot`, with status, headers and raw bytes."""
        return cast("ApiResponse[FlattenedConversations]", await self.api_client.call_operation(IDENTIFIERS, options))

    async def conversations_identifiers_snapshot_without_preload_content(
        self, **options: Unpack[RequestOptions]
    ) -> AsyncResponse:
        """As :meth:`conversations_identifiers_snapshot`, returning the unread HTTP response."""
        return cast(AsyncResponse, await self.api_client.call_operation(IDENTIFIERS, options, preload_content=False))

    # ------------------------------------------------------------ snapshot
    async def conversations_snapshot(
        self, transferables: Optional[bool] = None, **options: Unpack[RequestOptions]
    ) -> Conversations:
        """/conversations [GET]: every conversation, fully referenced."""
        return cast("ApiResponse[Conversations]", await self.api_client.call_operation(
            SNAPSHOT, options, query_params=_transferables(transferables))).data

    async def conversations_snapshot_with_http_info(
        self, transferables: Optional[bool] = None, **options: Unpack[RequestOptions]
    ) -> ApiResponse[Conversations]:
        """As :meth:`conversations_snapshot`, with status, headers and raw bytes."""
        return cast("ApiResponse[Conversations]", await self.api_client.call_operation(
            SNAPSHOT, options, query_params=_transferables(transferables)))

    async def conversations_snapshot_without_preload_content(
        self, transferables: Optional[bool] = None, **options: Unpack[RequestOptions]
    ) -> AsyncResponse:
        """As :meth:`conversations_snapshot`, returning the unread HTTP response."""
        return cast(AsyncResponse, await self.api_client.call_operation(
            SNAPSHOT, options, query_params=_transferables(transferables), preload_content=False))

    # ------------------------------------------------------------ stream
    def conversations_stream_identifiers(self, **options: Any) -> AsyncIdentifiersStream:
        """/conversations/stream/identifiers [WS]: the identifiers stream, for ``async with`` / ``async for``."""
        from pieces_os_client.aio._stream import (  # type: ignore[import-not-found,unused-ignore]
            AsyncIdentifiersStream,
        )

        return AsyncIdentifiersStream(self.api_client, STREAM_PATH, **options)
