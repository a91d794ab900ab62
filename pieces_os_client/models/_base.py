"""Hand-written foundations shared by every generated model and enum.

The generated modules in this package contain nothing but field declarations;
everything a model can *do* (parse, dump, stay compatible with newer servers)
lives here.

Wire rules, in one place:

* JSON keys are the OpenAPI property names (pydantic aliases); Python code may
  use either the alias or the Python field name (``var_schema`` / ``schema``).
* Properties the schema does not know are kept (``extra="allow"``) and written
  back unchanged, including ones whose value is ``null`` (held as ``JSON_NULL``).
* On output, fields holding ``None`` are left out, except properties the schema
  marks ``nullable: true`` that were explicitly given ``None``: those are
  written as ``null``.
* Enum values the schema does not list are kept verbatim (see ``PiecesEnum``).
"""


import enum
import gc
import json
import pprint
import threading
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar, Dict, FrozenSet, Optional, Type, TypeVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    PydanticUndefinedAnnotation,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic_core import CoreSchema, core_schema
from typing_extensions import Annotated, Self

from pieces_os_client import _lazy

__all__ = [
    "GC_PAUSE_BYTES",
    "JSON_NULL",
    "NULLABLE",
    "PiecesEnum",
    "PiecesModel",
    "PiecesNullableModel",
    "UuidStr",
    "validate_json",
]

#: ``json_schema_extra`` marker the generator puts on ``nullable: true`` properties.
NULLABLE: Dict[str, Any] = {"nullable": True}


class _JsonNull:
    """Type of :data:`JSON_NULL`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "JSON_NULL"

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, _JsonNull)

    def __hash__(self) -> int:
        return hash(None)

    def __reduce__(self) -> str:
        return "JSON_NULL"


#: Stands for a JSON ``null`` held in a property the schema does not declare.
#: pydantic's ``exclude_none`` would drop a plain ``None`` there, losing the key on
#: the way back; this object is kept and serialised as ``null``.  It is falsy and
#: compares equal to ``None``; test with ``value is None or value is JSON_NULL``.
JSON_NULL = _JsonNull()


def _keep_null(value: Any) -> Any:
    return JSON_NULL if value is None else value


def _restore_null(value: Any) -> Any:
    return None if value is JSON_NULL else value


class _KeepNull:
    """Schema of undeclared properties' values: anything, with ``null`` kept through ``exclude_none``.

    Equivalent to ``Annotated[Any, BeforeValidator(_keep_null), PlainSerializer(_restore_null)]``,
    spelled as a core schema: every model has this annotation, and the ``Annotated`` form
    made pydantic inspect both functions' signatures again for each model it built.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(
            _keep_null,
            core_schema.any_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(_restore_null),
        )


# Values of undeclared properties: anything, with ``null`` kept through ``exclude_none``. The
# class itself rather than ``Annotated[Any, _KeepNull]`` (the same core schema): every model has
# this annotation, and pydantic takes a class with its own schema hook in fewer steps (6-10 ms
# less CPU for the first build of ``Conversations`` with pydantic 2.13, 1-3 ms with 2.14).
if TYPE_CHECKING:
    _ExtraValue = Any
else:
    _ExtraValue = _KeepNull

_E = TypeVar("_E", bound="PiecesEnum")
_M = TypeVar("_M", bound=BaseModel)


def _uuid_to_str(value: Any) -> Any:
    """Let callers pass a ``uuid.UUID`` where the schema says ``format: uuid``."""
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


#: A string holding a UUID; ``uuid.UUID`` objects are accepted and stored as text.
UuidStr = Annotated[str, BeforeValidator(_uuid_to_str)]


class PiecesModel(BaseModel):
    """Base class of every generated model.

    Offers the method names of the official ``pieces_os_client`` models
    (``to_dict``, ``to_json``, ``to_str``, ``from_dict``, ``from_json``), implemented
    on top of pydantic's Rust core instead of per-class hand-written code.
    """

    model_config = ConfigDict(
        # Accept both the wire name (``schema``) and the Python name (``var_schema``).
        populate_by_name=True,
        # Assignments are checked and coerced like constructor arguments.
        validate_assignment=True,
        # Several schemas have properties called ``model`` / ``model_*``.
        protected_namespaces=(),
        # Newer Pieces OS versions add properties: keep them and write them back.
        extra="allow",
        # Build validators on first use, not at import: keeps imports cheap and
        # lets the mutually recursive models refer to each other freely.
        defer_build=True,
    )

    # Values of properties the schema does not declare (see ``JSON_NULL``).
    __pydantic_extra__: Dict[str, _ExtraValue]

    # ------------------------------------------------------------ lazy build

    @classmethod
    def model_rebuild(
        cls,
        *,
        force: bool = False,
        raise_errors: bool = True,
        **pydantic_internal: Any,
    ) -> Optional[bool]:
        """Build the validator and serializer, once, safely from any number of threads.

        pydantic calls this on a model's first use (``defer_build=True``); see
        ``pieces_os_client._lazy`` for the locking contract. The build runs under the
        package's build lock. If a model it needs is still being imported by another thread
        (the modules import each other in cycles), it waits for that import, completes the
        links it left (``_lazy.finish_links``) and tries again.
        A model of this package that cannot be built raises ``OpenApiException``, never a raw
        pydantic error; for other subclasses ``raise_errors=False`` keeps pydantic's meaning.

        Only ``force`` and ``raise_errors`` are pydantic's public arguments. pydantic's own
        first-use call passes private ones as well (``pydantic_internal``), which are ignored:
        a name an annotation quotes is looked up in the class's module (for a class defined
        in a function, also among the names there when the class was made), never in the
        caller's frame.
        """
        if cls.__pydantic_complete__ and not force:
            return None
        failure: Optional[Exception] = None
        with _lazy.BUILD_LOCK:
            for attempt in range(_BUILD_ATTEMPTS):
                if cls.__pydantic_complete__ and not force:
                    return None
                try:
                    # the cycles' modules noted by link_models; on a retry, also wait for the
                    # model imports other threads are still running
                    if attempt or _lazy._pending_links:
                        _lazy.finish_links()
                    if cls.__module__.startswith(_MODELS_PREFIX):
                        # the modules where the bundled classes' quoted names are found
                        _lazy.import_public_modules()
                    return _pydantic_rebuild(cls, force)
                except PydanticUndefinedAnnotation as exc:  # a name not linked yet: try again
                    failure = exc
                except Exception as exc:  # PydanticUserError, or a model module that does not import
                    from pieces_os_client._core.interrupts import interrupt_within

                    interrupt = interrupt_within(exc)
                    if interrupt is not None:  # Ctrl-C (or an exit) while pydantic-core built a validator
                        raise interrupt from None
                    failure = exc
                    break
        if not raise_errors and not cls.__module__.startswith(_MODELS_PREFIX):
            return False
        from pieces_os_client.exceptions import OpenApiException

        reason = getattr(failure, "message", None) or str(failure)
        raise OpenApiException(f"the model {cls.__name__} could not be built: {reason}") from failure

    # ----------------------------------------------------------- official API

    def to_dict(self) -> Dict[str, Any]:
        """Return the wire form as a dict: aliases as keys, ``None`` left out.

        Values stay Python objects (``datetime``, enum members); use
        :meth:`to_json` for text.
        """
        return type(self).__pydantic_serializer__.to_python(self, by_alias=True, exclude_none=True)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        """Return the wire form as a JSON string (same rules as :meth:`to_dict`).

        Asks pydantic's serializer directly (as ``model_dump_json`` does, without its
        argument handling): a request body is a call of a few microseconds. On a class not
        built yet, pydantic's placeholder serializer builds it (``model_rebuild``) first.
        """
        return type(self).__pydantic_serializer__.to_json(self, by_alias=True, exclude_none=True).decode()

    def _to_json_bytes(self) -> bytes:
        """Return the wire form as UTF-8 JSON bytes, for request bodies."""
        cls = type(self)
        if not cls.__pydantic_complete__:  # only after ``model_construct`` on a never-validated class
            cls.model_rebuild()
        return cls.__pydantic_serializer__.to_json(self, by_alias=True, exclude_none=True)

    def to_str(self) -> str:
        """Return a readable, pretty-printed representation (keys are aliases)."""
        return pprint.pformat(self.model_dump(by_alias=True))

    @classmethod
    def from_dict(cls, obj: Union[Dict[str, Any], BaseModel, None]) -> Optional[Self]:
        """Build an instance from a dict (or an existing model); ``None`` gives ``None``."""
        if obj is None:
            return None
        return cls.model_validate(obj)

    @classmethod
    def from_json(cls, json_str: Union[str, bytes, bytearray]) -> Optional[Self]:
        """Parse JSON text straight into an instance; the JSON ``null`` gives ``None``."""
        if len(json_str) <= 16 and json_str.strip() in ("null", b"null"):
            return None
        return validate_json(cls, json_str)


# ------------------------------------------------------------------ parsing large documents

#: Documents from this many bytes (or characters) up are parsed with the cyclic garbage
#: collector paused; see :func:`validate_json`.
GC_PAUSE_BYTES = 64 * 1024


def validate_json(cls: Type[_M], data: Union[str, bytes, bytearray]) -> _M:
    """``cls.model_validate_json(data)``, without the cyclic collector's repeated passes.

    A large snapshot builds a hundred thousand container objects, none of them garbage.
    With the collector running, young-generation passes fire every few hundred of them
    and older passes walk the growing result again and again; afterwards the whole result
    still sits in the young generation, so the next pass (often in the same call) walks it
    once more. For documents of ``GC_PAUSE_BYTES`` or more this:

    * runs a young collection first (cheap: the young generations are small), so that
      what is left there is alive;
    * pauses the collector for the parse (never if the application turned it off);
    * moves every tracked object, the new result included, to the oldest generation with
      ``gc.freeze()`` + ``gc.unfreeze()``, which also resets the young-generation count, so
      no pass over the result is pending; full collections still see it. Skipped when the
      application has frozen objects itself (``gc.get_freeze_count()``), which it keeps.

    No collector setting is changed, and a failed parse just resumes the collector.
    """
    if len(data) < GC_PAUSE_BYTES or not gc.isenabled():
        return cls.model_validate_json(data)
    gc.collect(1)
    gc.disable()
    try:
        result = cls.model_validate_json(data)
    except BaseException:
        gc.enable()
        raise
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()
    return result


class PiecesNullableModel(PiecesModel):
    """Base of the models that declare ``nullable: true`` properties.

    ``exclude_none`` (used for the wire form) drops every ``None``; for these models
    a ``None`` the caller set explicitly on a nullable property is put back as
    ``null``, as the official SDK does.  Kept out of ``PiecesModel`` because a
    Python-level serializer on every model would make serialisation several times
    slower; only a couple of schemas need it.
    """

    # Python names of the fields declared ``nullable: true``, computed per class.
    __pieces_nullable__: ClassVar[Optional[FrozenSet[str]]] = None

    @classmethod
    def _nullable_fields(cls) -> FrozenSet[str]:
        found = cls.__dict__.get("__pieces_nullable__")
        if found is None:
            found = frozenset(
                name
                for name, info in cls.model_fields.items()
                if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("nullable")
            )
            cls.__pieces_nullable__ = found
        return found

    @model_serializer(mode="wrap")
    def _pieces_serialize(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        # Put back explicit nulls of nullable properties.  Skipped when the caller
        # filters fields in other ways, where "was it dropped for being None?"
        # cannot be told apart.
        if (
            not info.exclude_none
            or info.exclude_defaults
            or info.include is not None
            or info.exclude is not None
            or not isinstance(data, dict)
        ):
            return data
        cls = type(self)
        fields_set = self.__pydantic_fields_set__
        restored = False
        for name in cls._nullable_fields():
            if name in fields_set and getattr(self, name) is None:
                alias = cls.model_fields[name].alias
                key = alias if (alias and info.by_alias) else name
                if key not in data:
                    data[key] = None
                    restored = True
        return _reorder(self, data, bool(info.by_alias)) if restored else data


def _reorder(model: PiecesModel, data: Dict[str, Any], by_alias: bool) -> Dict[str, Any]:
    """Put restored ``null`` keys back in declaration order."""
    order = []
    for name, info in type(model).model_fields.items():
        order.append(info.alias if (by_alias and info.alias) else name)
    if model.__pydantic_extra__:
        order.extend(model.__pydantic_extra__)
    out: Dict[str, Any] = {key: data.pop(key) for key in order if key in data}
    out.update(data)
    return out


#: How many times a model build is tried when a name it needs was not linked yet (see
#: ``_lazy.link_models``). One ``finish_links`` is always enough; the rest is a margin.
_BUILD_ATTEMPTS = 3
_MODELS_PREFIX = __name__.rpartition(".")[0] + "."  # "pieces_os_client.models."


def _pydantic_rebuild(cls: Type[PiecesModel], force: bool) -> Optional[bool]:
    """pydantic's own ``model_rebuild``, given its public arguments only.

    pydantic also looks quoted names up among the local variables of the frame that calls
    it: this one, which holds nothing but ``cls`` and ``force``.
    """
    return super(PiecesModel, cls).model_rebuild(force=force, raise_errors=True)


# ------------------------------------------------------------------ enums

#: How many unlisted values each enum remembers, so that repeated unknown values
#: come back as the same object.  Beyond this, fresh objects are made each time
#: (still equal, hashable and serialisable), so hostile input cannot grow memory.
_UNKNOWN_CACHE_SIZE = 64
_unknown_cache: Dict[type, OrderedDict[str, Any]] = {}
_unknown_lock = threading.Lock()


class PiecesEnum(str, enum.Enum):
    """Base of every generated string enum.

    Values outside the declared members are accepted: ``X("NEW_VALUE")`` returns a
    pseudo-member of ``X`` whose ``value`` (and string content) is ``"NEW_VALUE"``,
    so a newer server's values survive a round trip unchanged.  Every enum also has
    an ``UNKNOWN`` member, as the official SDK does, but unlisted values are *not*
    turned into it.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        # The string content itself: for a member of another ``str`` enum, ``str()``
        # would give ``"OtherEnum.NAME"``.
        text = str.__str__(value)
        with _unknown_lock:
            cache = _unknown_cache.get(cls)
            if cache is None:
                cache = _unknown_cache[cls] = OrderedDict()
            member = cache.get(text)
            if member is not None:
                cache.move_to_end(text)
                return member
        member = str.__new__(cls, text)
        member._name_ = text
        member._value_ = text
        with _unknown_lock:
            cache[text] = member
            if len(cache) > _UNKNOWN_CACHE_SIZE:
                cache.popitem(last=False)
        return member

    @property
    def is_known(self) -> bool:
        """``True`` for a declared member, ``False`` for a value kept from a newer server."""
        return type(self)._value2member_map_.get(self._value_) is self

    @classmethod
    def from_json(cls: Type[_E], json_str: Union[str, bytes, bytearray]) -> _E:
        """Build a member (or pseudo-member) from a JSON string such as ``'"COPILOT"'``."""
        return cls(json.loads(json_str))

