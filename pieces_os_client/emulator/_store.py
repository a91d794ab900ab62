"""The emulator's in-memory data: assets, conversations and their JSON forms.

Nothing here knows about HTTP or aiohttp. Every public method of :class:`Store` takes
the store's lock, so the store may be used from the server's event loop and from a test
thread at the same time.

Conversations are serialized once, when they are created, in both of the forms the API can
return (with and without transferable content); snapshot bodies are assembled from those
pre-serialized pieces and cached until the next change.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "DEMO_ASSETS_FILE",
    "AssetRecord",
    "AssetSource",
    "Store",
    "StoreError",
    "load_assets",
]

DEMO_ASSETS_FILE = Path(__file__).with_name("demo_assets.json")

_SCHEMA: Dict[str, Any] = {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"}
_CREATOR = "497f6eca-6276-4993-bfeb-53cbbbba6f08"
_SUMMARY_PREVIEW_LINES = 5

# Common language names mapped to the file-extension style values of ClassificationSpecificEnum.
_LANGUAGE_ALIASES = {
    "python": "py",
    "javascript": "js",
    "typescript": "ts",
    "rust": "rs",
    "golang": "go",
    "ruby": "rb",
    "kotlin": "kt",
    "csharp": "cs",
    "c#": "cs",
    "c++": "cpp",
    "shell": "sh",
    "bash": "sh",
    "markdown": "md",
    "text": "txt",
    "plaintext": "txt",
}

_LANGUAGE_NAMES = {
    "py": "Python",
    "js": "JavaScript",
    "ts": "TypeScript",
    "rs": "Rust",
    "go": "Go",
    "rb": "Ruby",
    "kt": "Kotlin",
    "cs": "C#",
    "cpp": "C++",
    "c": "C",
    "java": "Java",
    "sh": "Shell",
    "sql": "SQL",
    "md": "Markdown",
    "txt": "plain text",
    "json": "JSON",
    "yaml": "YAML",
    "html": "HTML",
    "css": "CSS",
}

AssetSource = Union[str, "os.PathLike[str]", Sequence[Mapping[str, Any]]]


class StoreError(Exception):
    """A request the store cannot honour; the message is the text/plain reason sent back."""


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def grouped_timestamp(moment: _dt.datetime) -> Dict[str, Any]:
    """A GroupedTimestamp: ISO-8601 UTC value with milliseconds plus a readable form."""
    moment = moment.astimezone(_dt.timezone.utc)
    value = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    hour = moment.hour % 12 or 12
    suffix = "a.m." if moment.hour < 12 else "p.m."
    readable = f"{moment.strftime('%B')} {moment.day}, {moment.year}, {hour}:{moment.minute:02d} {suffix}"
    return {"value": value, "readable": readable}


@dataclass
class AssetRecord:
    """One asset known to the emulator, in the simple form the emulator works with."""

    id: str
    name: str
    text: str
    language: str = "txt"
    created: _dt.datetime = field(default_factory=_now)
    format_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def line_count(self) -> int:
        return len(self.text.splitlines())

    def reference(self) -> Dict[str, Any]:
        """A ReferencedAsset whose reference is a schema-valid FlattenedAsset."""
        stamp = grouped_timestamp(self.created)
        return {
            "id": self.id,
            "reference": {
                "schema": dict(_SCHEMA),
                "id": self.id,
                "name": self.name,
                "creator": _CREATOR,
                "created": stamp,
                "updated": stamp,
                "formats": {"iterable": [{"id": self.format_id}]},
                "preview": {"base": self.format_id},
                "original": self.format_id,
                "mechanism": "MANUAL",
            },
        }


def _normalize_language(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return "txt"
    lowered = value.strip().lower()
    return _LANGUAGE_ALIASES.get(lowered, value.strip())


def _asset_text_from_formats(formats: Any) -> Tuple[str, Optional[str]]:
    """Dig the first raw string (and its extension) out of an Asset/FlattenedAsset's formats."""
    if not isinstance(formats, Mapping):
        return "", None
    items = formats.get("iterable") or []
    if not isinstance(items, list):
        raise ValueError(f"an asset's formats.iterable must be a list, not {type(items).__name__}")
    for item in items:
        if not isinstance(item, Mapping):
            continue
        # Asset.formats holds Format objects; FlattenedAsset.formats holds ReferencedFormat.
        fmt = item.get("reference", item)
        if not isinstance(fmt, Mapping):
            continue
        fragment = fmt.get("fragment")
        raw = None
        if isinstance(fragment, Mapping):
            string = fragment.get("string")
            if isinstance(string, Mapping):
                raw = string.get("raw")
        if isinstance(raw, str):
            specific = None
            classification = fmt.get("classification")
            if isinstance(classification, Mapping):
                specific = classification.get("specific")
            return raw, specific if isinstance(specific, str) else None
    return "", None


def asset_from_json(obj: Mapping[str, Any]) -> AssetRecord:
    """Build an :class:`AssetRecord` from the simple form or from an Asset-shaped object.

    Simple form: ``{"id": str (optional), "name": str, "text": str, "language": str (optional)}``.
    Asset-shaped (``Asset`` or ``FlattenedAsset``): ``id``, ``name`` and the first format whose
    ``fragment.string.raw`` is present; the language comes from that format's
    ``classification.specific``.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(f"an asset must be a JSON object, not {type(obj).__name__}")
    asset_id = obj.get("id") or str(uuid.uuid4())
    if not isinstance(asset_id, str):
        raise ValueError("an asset's id must be a string")
    name = obj.get("name")
    if "formats" in obj and "text" not in obj:
        text, language = _asset_text_from_formats(obj.get("formats"))
    else:
        text = obj.get("text", "")
        language = obj.get("language")
        if not isinstance(text, str):
            raise ValueError(f"asset {asset_id}: 'text' must be a string")
    if not isinstance(name, str) or not name:
        name = f"Untitled asset {asset_id[:8]}"
    return AssetRecord(id=asset_id, name=name, text=text, language=_normalize_language(language))


def load_assets(source: AssetSource) -> List[AssetRecord]:
    """Read assets from a JSON file path, or from an already-parsed list of objects.

    The file holds a JSON list of assets (or an object with an ``iterable`` list, as the
    Pieces ``Assets`` shape has); see :func:`asset_from_json` for each item's form.
    """
    data: Any
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as handle:
            data = json.load(handle)
    else:
        data = source
    if isinstance(data, Mapping) and isinstance(data.get("iterable"), list):
        data = data["iterable"]
    if not isinstance(data, list):
        raise ValueError("an assets file must hold a JSON list of assets")
    return [asset_from_json(item) for item in data]


def summarize_asset(asset: AssetRecord) -> str:
    """The deterministic 'summary' the emulator uses as a conversation's first message."""
    lines = asset.text.splitlines()
    language = _LANGUAGE_NAMES.get(asset.language, asset.language)
    count = len(lines)
    plural = "line" if count == 1 else "lines"
    parts = [f'This conversation is grounded on the asset "{asset.name}", {count} {plural} of {language}.']
    if lines:
        preview = lines[:_SUMMARY_PREVIEW_LINES]
        parts.append("It begins with:")
        parts.append("```" + asset.language + "\n" + "\n".join(preview) + "\n```")
        if count > len(preview):
            parts.append(f"({count - len(preview)} more {'line' if count - len(preview) == 1 else 'lines'})")
    else:
        parts.append("The asset is empty.")
    parts.append("Ask me anything about it.")
    return "\n\n".join(parts)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _strip_transferables(conversation: Dict[str, Any]) -> Dict[str, Any]:
    """A copy without the heavy transferable content (the raw text of message fragments)."""
    lean = copy.deepcopy(conversation)
    for item in lean.get("messages", {}).get("iterable", []):
        fragment = item.get("reference", {}).get("fragment")
        if isinstance(fragment, dict):
            fragment.pop("string", None)
            fragment.pop("bytes", None)
    return lean


@dataclass
class _Conversation:
    id: str
    data: Dict[str, Any]
    full: bytes
    lean: bytes


# Fields of a SeededConversation copied as they are into the new Conversation.
_COPIED_SEED_FIELDS = ("name", "favorited", "application", "model", "assets", "websites", "pipeline", "demo")


class Store:
    """Assets and conversations, guarded by one lock."""

    def __init__(self, assets: Iterable[AssetRecord] = ()) -> None:
        self._lock = threading.RLock()
        self._initial_assets = list(assets)
        self._assets: Dict[str, AssetRecord] = {}
        self._conversations: Dict[str, _Conversation] = {}
        self._snapshot_cache: Dict[bool, bytes] = {}
        self._ids_cache: Optional[bytes] = None
        self.reset()

    # -- assets ---------------------------------------------------------------------------
    def add_asset(self, asset: AssetRecord) -> None:
        with self._lock:
            self._assets[asset.id] = asset

    def asset_ids(self) -> List[str]:
        with self._lock:
            return list(self._assets)

    def get_asset(self, asset_id: str) -> Optional[AssetRecord]:
        with self._lock:
            return self._assets.get(asset_id)

    # -- whole-store --------------------------------------------------------------------
    def reset(self) -> List[str]:
        """Drop every conversation and restore the initial assets; returns the dropped ids."""
        with self._lock:
            dropped = list(self._conversations)
            self._conversations.clear()
            self._assets = {asset.id: asset for asset in self._initial_assets}
            self._invalidate()
            return dropped

    def _invalidate(self) -> None:
        self._snapshot_cache.clear()
        self._ids_cache = None

    # -- conversations ------------------------------------------------------------------
    def conversation_ids(self) -> List[str]:
        with self._lock:
            return list(self._conversations)

    def has_conversation(self, conversation_id: str) -> bool:
        with self._lock:
            return conversation_id in self._conversations

    def conversation(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """A deep copy of one stored conversation (full form), or None."""
        with self._lock:
            found = self._conversations.get(conversation_id)
            return copy.deepcopy(found.data) if found else None

    def _store(self, data: Dict[str, Any]) -> _Conversation:
        record = _Conversation(data["id"], data, _dumps(data), _dumps(_strip_transferables(data)))
        with self._lock:
            self._conversations[record.id] = record
            self._invalidate()
        return record

    @staticmethod
    def _message(
        conversation_id: str, role: str, fragment: Dict[str, Any], moment: _dt.datetime, **extra: Any
    ) -> Dict[str, Any]:
        stamp = grouped_timestamp(moment)
        message: Dict[str, Any] = {
            "schema": dict(_SCHEMA),
            "id": str(uuid.uuid4()),
            "created": extra.pop("created", None) or stamp,
            "updated": stamp,
            "role": role,
            "fragment": fragment,
            "conversation": {"id": conversation_id},
        }
        message.update({key: value for key, value in extra.items() if value is not None})
        return message

    @staticmethod
    def _new_conversation(conversation_id: str, name: str, moment: _dt.datetime) -> Dict[str, Any]:
        stamp = grouped_timestamp(moment)
        return {
            "schema": dict(_SCHEMA),
            "id": conversation_id,
            "name": name,
            "created": stamp,
            "updated": stamp,
            "favorited": False,
            "type": "COPILOT",
            "messages": {"iterable": [], "indices": {}},
        }

    @staticmethod
    def _attach_messages(conversation: Dict[str, Any], messages: List[Dict[str, Any]]) -> None:
        conversation["messages"] = {
            "iterable": [{"id": message["id"], "reference": message} for message in messages],
            "indices": {message["id"]: index for index, message in enumerate(messages)},
        }

    def _new_id(self, wanted: Optional[str]) -> str:
        if wanted is None:
            return str(uuid.uuid4())
        if self.has_conversation(wanted):
            raise StoreError(f"a conversation with id {wanted!r} already exists")
        return wanted

    def create_from_asset(self, asset_id: str, conversation_id: Optional[str] = None) -> Tuple[str, bytes]:
        """Create a conversation grounded on an asset; returns (id, ConversationsCreateFromAssetOutput)."""
        asset = self.get_asset(asset_id)
        if asset is None:
            raise StoreError(f"asset not found: no asset with id {asset_id!r}")
        moment = _now()
        conversation_id = self._new_id(conversation_id)
        data = self._new_conversation(conversation_id, f"Conversation about {asset.name}", moment)
        summary = self._message(
            conversation_id,
            "ASSISTANT",
            {"string": {"raw": summarize_asset(asset)}, "metadata": {"ext": "md"}},
            moment,
        )
        self._attach_messages(data, [summary])
        data["assets"] = {"iterable": [asset.reference()], "indices": {asset.id: 0}}
        data["grounding"] = {"messages": {"iterable": [{"id": summary["id"]}], "indices": {summary["id"]: 0}}}
        record = self._store(data)
        return conversation_id, b'{"conversation":{"id":' + _dumps(conversation_id) + b',"reference":' + (
            record.full + b"}}"
        )

    def create(
        self,
        seed: Optional[Mapping[str, Any]],
        transferables: bool = True,
        conversation_id: Optional[str] = None,
    ) -> Tuple[str, bytes]:
        """Create a conversation from an (already validated) SeededConversation dict, or an empty one."""
        moment = _now()
        conversation_id = self._new_id(conversation_id)
        data = self._new_conversation(conversation_id, "New Conversation", moment)
        if seed:
            for key in _COPIED_SEED_FIELDS:
                if seed.get(key) is not None:
                    data[key] = copy.deepcopy(seed[key])
            if isinstance(seed.get("type"), str):
                data["type"] = seed["type"]
            messages = [
                self._message(
                    conversation_id,
                    str(item.get("role")),
                    copy.deepcopy(item.get("fragment") or {}),
                    moment,
                    created=item.get("created"),
                    sentiment=item.get("sentiment"),
                    model=copy.deepcopy(item.get("model")),
                )
                for item in seed.get("messages") or []
                if isinstance(item, Mapping)
            ]
            self._attach_messages(data, messages)
        record = self._store(data)
        return conversation_id, record.full if transferables else record.lean

    def delete(self, conversation_id: str) -> None:
        with self._lock:
            if self._conversations.pop(conversation_id, None) is None:
                raise StoreError(f"conversation not found: no conversation with id {conversation_id!r}")
            self._invalidate()

    # -- bodies -------------------------------------------------------------------------
    def identifiers_body(self) -> bytes:
        """FlattenedConversations: every conversation id, oldest first."""
        with self._lock:
            if self._ids_cache is None:
                ids = list(self._conversations)
                self._ids_cache = _dumps(
                    {"iterable": [{"id": cid} for cid in ids], "indices": {cid: i for i, cid in enumerate(ids)}}
                )
            return self._ids_cache

    def snapshot_body(self, transferables: bool = True) -> bytes:
        """Conversations: every conversation in full (or without transferables), oldest first."""
        with self._lock:
            cached = self._snapshot_cache.get(transferables)
            if cached is None:
                records = list(self._conversations.values())
                parts = [record.full if transferables else record.lean for record in records]
                indices = _dumps({record.id: i for i, record in enumerate(records)})
                cached = b'{"iterable":[' + b",".join(parts) + b'],"indices":' + indices + b"}"
                self._snapshot_cache[transferables] = cached
            return cached


def streamed_identifiers(ids: Iterable[str], deleted: bool = False) -> str:
    """A StreamedIdentifiers message (as JSON text) for the given conversation ids."""
    if deleted:
        items = [{"conversation": {"id": cid}, "deleted": True} for cid in ids]
    else:
        items = [{"conversation": {"id": cid}} for cid in ids]
    return json.dumps({"iterable": items}, ensure_ascii=False, separators=(",", ":"))
