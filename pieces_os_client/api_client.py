"""ApiClient: turns an operation call into an HTTP request and the response into a typed result.

Every operation of every API class goes through :meth:`ApiClient.call_operation`, which
validates the per-call options, serializes (:meth:`param_serialize`), sends
(:meth:`call_api`) and parses (:meth:`response_deserialize`). The official SDK's public
methods keep their names and signatures so code that drives them directly still works.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)
from urllib.parse import quote, urlencode

import pydantic
import pydantic_core
from typing_extensions import TypedDict

from pieces_os_client import rest
from pieces_os_client._core.interrupts import interrupt_within
from pieces_os_client._core.urls import without_userinfo
from pieces_os_client._version import __version__
from pieces_os_client.api_response import ApiResponse
from pieces_os_client.configuration import API_AUTH, Configuration
from pieces_os_client.exceptions import (
    ApiException,
    ApiTypeError,
    ApiValueError,
    ResponseFormatError,
    body_excerpt,
)

if TYPE_CHECKING:
    import urllib3

__all__ = ["ApiClient", "Operation", "RequestOptions", "RequestSerialized"]

RequestSerialized = Tuple[str, str, Dict[str, str], Optional[Any], List[Tuple[str, Any]]]
#: (method, url, headers, body, the call's _request_timeout): what ApiClient.build_request returns
PreparedRequest = Tuple[str, str, Dict[str, str], Optional[bytes], Any]

USER_AGENT = f"pieces-os-client-python/{__version__}"
_JSON_MIME = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;|$)", re.IGNORECASE)
_CHARSET = re.compile(r"charset=([\w-]+)", re.IGNORECASE)


class RequestOptions(TypedDict, total=False):
    """Per-call options every operation accepts (the official underscore names)."""

    _request_timeout: Union[float, Tuple[float, float], None]
    _request_auth: Optional[Dict[str, Any]]
    _content_type: Optional[str]
    _headers: Optional[Dict[str, Any]]
    _host_index: int


_OPTION_NAMES = frozenset(RequestOptions.__annotations__)
#: path segments made of RFC 3986 unreserved characters only, which ``quote`` leaves as they are
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


def _check_options(options: Mapping[str, Any]) -> None:
    """Refuse unknown per-call options and malformed values of the known ones."""
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise ApiTypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    host_index = options.get("_host_index", 0)
    if isinstance(host_index, bool) or not isinstance(host_index, int) or host_index != 0:
        raise ApiValueError(f"_host_index must be 0 (this API has a single server), not {host_index!r}")
    headers = options.get("_headers")
    if headers is not None and not isinstance(headers, Mapping):
        raise ApiTypeError(f"_headers must be a dict of header names to values, not {type(headers).__name__}")


def _prefer_json(choices: Sequence[str]) -> Optional[str]:
    """The first JSON media type offered, else the first one; None if there are none."""
    for choice in choices:
        if "json" in choice.lower():
            return choice
    return choices[0] if choices else None


@dataclass(frozen=True)
class Operation:
    """What the API document says about one HTTP operation."""

    method: str
    path: str
    responses: Mapping[str, Optional[str]]
    accept: Sequence[str] = ("application/json", "text/plain")
    content_types: Sequence[str] = ()
    auth: Sequence[str] = API_AUTH
    #: the Accept and Content-Type sent unless a call says otherwise, chosen once (JSON preferred)
    accept_header: Optional[str] = field(init=False, repr=False, compare=False)
    content_type_header: Optional[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "accept_header", _prefer_json(self.accept))
        object.__setattr__(self, "content_type_header", _prefer_json(self.content_types))


class DefaultHeaders:
    """The headers every request of a client carries (User-Agent first); shared by both clients."""

    default_headers: Dict[str, str]

    @property
    def user_agent(self) -> str:
        return self.default_headers["User-Agent"]

    @user_agent.setter
    def user_agent(self, value: str) -> None:
        self.default_headers["User-Agent"] = value

    def set_default_header(self, header_name: str, header_value: str) -> None:
        self.default_headers[header_name] = header_value


class ApiClient(DefaultHeaders):
    """Sends requests for the API classes and manages the connection pool.

    Use it as a context manager (``with ApiClient(config) as client:``) or call
    :meth:`close` so pooled connections are released.
    """

    PRIMITIVE_TYPES: ClassVar[Tuple[type, ...]] = (float, bool, bytes, str, int)
    NATIVE_TYPES_MAPPING: ClassVar[Dict[str, Any]] = {
        "int": int,
        "long": int,
        "float": float,
        "str": str,
        "bool": bool,
        "date": datetime.date,
        "datetime": datetime.datetime,
        "decimal": decimal.Decimal,
        "object": object,
    }
    _default: ClassVar[Optional[ApiClient]] = None

    def __init__(
        self,
        configuration: Optional[Configuration] = None,
        header_name: Optional[str] = None,
        header_value: Optional[str] = None,
        cookie: Optional[str] = None,
    ) -> None:
        self.configuration = configuration if configuration is not None else Configuration.get_default()
        self.rest_client = rest.RESTClientObject(self.configuration)
        self.default_headers: Dict[str, str] = {"User-Agent": USER_AGENT}
        if header_name is not None:
            self.default_headers[header_name] = str(header_value)
        self.cookie = cookie
        self.client_side_validation = self.configuration.client_side_validation

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections. The client can still be used; it reconnects."""
        self.rest_client.close()

    @classmethod
    def get_default(cls) -> ApiClient:
        """The process-wide default client, made once whichever thread asks first."""
        default = cls._default
        if default is None:
            from pieces_os_client import _lazy

            with _lazy.BUILD_LOCK:  # making a client does no I/O (discovery waits for the first call)
                default = cls._default
                if default is None:
                    default = cls._default = cls()
        return default

    @classmethod
    def set_default(cls, default: Optional[ApiClient]) -> None:
        cls._default = default

    # ------------------------------------------------------------------ the one request path
    def call_operation(
        self,
        op: Operation,
        options: Mapping[str, Any],
        *,
        path_params: Optional[Dict[str, Any]] = None,
        query_params: Optional[List[Tuple[str, Any]]] = None,
        body: Any = None,
        preload_content: bool = True,
    ) -> Union[ApiResponse[Any], urllib3.BaseHTTPResponse]:
        """Serialize, send and parse one operation call.

        Returns the ``ApiResponse`` or, with ``preload_content=False``, the urllib3 response
        (unread; the caller reads and releases it).
        """
        method, url, header_map, payload, timeout = self.build_request(
            op, options, path_params=path_params, query_params=query_params, body=body
        )
        response = self.rest_client.request(
            method, url, headers=header_map, body=payload, _request_timeout=timeout, preload_content=preload_content,
        )
        if not preload_content:
            return response.response
        return self.response_deserialize(response, op.responses, request_line=f"{method} {op.path}")

    def build_request(
        self,
        op: Operation,
        options: Mapping[str, Any],
        *,
        path_params: Optional[Dict[str, Any]] = None,
        query_params: Optional[List[Tuple[str, Any]]] = None,
        body: Any = None,
    ) -> PreparedRequest:
        """The I/O-free first half of a call: options checked, request serialized.

        Returns (method, url, headers, body bytes or None, the call's ``_request_timeout``);
        the sync and async transports both send what this returns.
        """
        if options:  # most calls pass none: nothing to check then
            _check_options(options)
            headers = options.get("_headers")
        else:
            headers = None
        header_params: Dict[str, Any] = dict(headers) if headers else {}
        if op.accept_header is not None:
            header_params.setdefault("Accept", op.accept_header)
        if op.content_types:
            content_type = (options.get("_content_type") if options else None) or op.content_type_header
            if body is not None and content_type:
                header_params.setdefault("Content-Type", content_type)

        method, url, header_map, payload, _ = self.param_serialize(
            op.method,
            op.path,
            path_params=path_params,
            query_params=query_params,
            header_params=header_params,
            body=body,
            auth_settings=list(op.auth),
            _request_auth=options.get("_request_auth") if options else None,
        )
        return method, url, header_map, payload, options.get("_request_timeout") if options else None

    # ------------------------------------------------------------------ official building blocks
    def param_serialize(
        self,
        method: str,
        resource_path: str,
        path_params: Optional[Dict[str, Any]] = None,
        query_params: Optional[List[Tuple[str, Any]]] = None,
        header_params: Optional[Dict[str, Any]] = None,
        body: Any = None,
        post_params: Optional[List[Tuple[str, Any]]] = None,
        files: Optional[Dict[str, Any]] = None,
        auth_settings: Optional[List[str]] = None,
        collection_formats: Optional[Dict[str, str]] = None,
        _host: Optional[str] = None,
        _request_auth: Optional[Dict[str, Any]] = None,
    ) -> RequestSerialized:
        """Build (method, url, headers, body, post_params) for a request.

        Path parameters are percent-encoded with nothing left unescaped (``/``, ``?``,
        ``#``, ``%`` all encoded), so an id can never change which endpoint is called.
        """
        config = self.configuration
        headers: Dict[str, str] = dict(self.default_headers)
        if header_params:
            headers.update({k: (v if type(v) is str else str(v)) for k, v in header_params.items()})
        if self.cookie:
            headers["Cookie"] = self.cookie

        path = resource_path
        for name, value in (path_params or {}).items():
            segment = _path_text(name, value)
            if not _URL_SAFE(segment):  # ids are usually URL-safe already: nothing to quote
                segment = quote(segment, safe=config.safe_chars_for_path_param)
            if segment.strip(".") == "":
                # "." and ".." would be collapsed as dot-segments and change the endpoint called
                segment = segment.replace(".", "%2E")
            path = path.replace("{" + name + "}", segment)

        query: List[Tuple[str, Any]] = list(query_params or [])
        self.update_params_for_auth(headers, query, auth_settings, resource_path, method, body, _request_auth)

        url = without_userinfo(_host or config.host) + path
        if query:
            url += "?" + self.parameters_to_url_query(query, collection_formats)

        payload: Any = None
        if body is not None:
            payload = self._serialize_body(body)
        return method, url, headers, payload, list(post_params or [])

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Optional[Dict[str, str]] = None,
        body: Any = None,
        post_params: Optional[List[Tuple[str, Any]]] = None,
        _request_timeout: rest.RequestTimeout = None,
    ) -> rest.RESTResponse:
        """Send a serialized request; the body of the response is not read yet."""
        return self.rest_client.request(
            method, url, headers=header_params, body=body, post_params=post_params,
            _request_timeout=_request_timeout, preload_content=False,
        )

    def response_deserialize(
        self,
        response_data: rest.RESTResponse,
        response_types_map: Optional[Mapping[str, Optional[str]]] = None,
        *,
        request_line: str = "",
    ) -> ApiResponse[Any]:
        """Parse a response into an ``ApiResponse``, or raise the fitting ``ApiException``."""
        return self.finish_response(response_data, response_data.read(), response_types_map, request_line=request_line)

    def finish_response(
        self,
        response_data: Any,
        raw: bytes,
        response_types_map: Optional[Mapping[str, Optional[str]]] = None,
        *,
        request_line: str = "",
    ) -> ApiResponse[Any]:
        """The I/O-free second half of a call: a body already read, parsed or raised as an error.

        ``response_data`` gives ``status``, ``reason``, ``getheader()`` and ``getheaders()``.
        """
        status = response_data.status
        types = response_types_map or {}
        response_type = types.get(str(status))
        if response_type is None and f"{str(status)[0]}XX" in types:
            response_type = types[f"{str(status)[0]}XX"]
        if response_type is None and 200 <= status <= 299 and str(status) not in types:
            # A success status the document does not list (say 201 for a 200): the caller was
            # promised the documented success type, so parse as that rather than return None.
            response_type = next((t for code, t in types.items() if code.startswith("2")), None)
        content_type = response_data.getheader("content-type")

        data: Any = None
        if not 200 <= status <= 299:
            body = body_excerpt(raw, _charset(content_type))
            if response_type == "str":
                data = body  # the text itself: kept bounded like the body
            elif response_type is not None:
                try:
                    data = self._parse(raw, response_type, content_type)
                except (ValueError, pydantic.ValidationError, RecursionError):
                    data = None
            raise ApiException.from_response(http_resp=response_data, body=body, data=data)

        if response_type is not None:
            try:
                data = self._parse(raw, response_type, content_type)
            except (ValueError, pydantic.ValidationError, RecursionError) as exc:
                raise _format_error(exc, response_data, raw, content_type, response_type, request_line) from exc
        return ApiResponse(status_code=status, data=data, headers=response_data.getheaders(), raw_data=raw)

    def deserialize(self, response_text: Union[str, bytes], response_type: str, content_type: Optional[str]) -> Any:
        """Parse a body into ``response_type`` (a model name or a primitive name)."""
        raw = response_text.encode("utf-8") if isinstance(response_text, str) else response_text
        return self._parse(raw, response_type, content_type)

    def sanitize_for_serialization(self, obj: Any) -> Any:
        """Turn models, enums, dates and containers into JSON-ready data."""
        if obj is None or isinstance(obj, (str, int, float, bool)):
            return obj.value if isinstance(obj, enum.Enum) else obj
        if isinstance(obj, enum.Enum):
            return obj.value
        if isinstance(obj, pydantic.SecretStr):
            return obj.get_secret_value()
        if isinstance(obj, (list, tuple)):
            return [self.sanitize_for_serialization(v) for v in obj]
        if isinstance(obj, (datetime.datetime, datetime.date)):
            return obj.isoformat()
        if isinstance(obj, (uuid.UUID, decimal.Decimal)):
            return str(obj)
        if isinstance(obj, bytes):
            return obj.decode("utf-8", errors="replace")
        if isinstance(obj, pydantic.BaseModel):
            return json.loads(_model_json(obj))
        if isinstance(obj, Mapping):
            return {str(k): self.sanitize_for_serialization(v) for k, v in obj.items()}
        raise ApiTypeError(f"cannot serialize a {type(obj).__name__} to JSON")

    def update_params_for_auth(
        self,
        headers: Dict[str, str],
        queries: List[Tuple[str, Any]],
        auth_settings: Optional[List[str]],
        resource_path: str,
        method: str,
        body: Any,
        request_auth: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Attach credentials: the per-call ``_request_auth`` or the configured ones."""
        if request_auth:
            settings = [_checked_auth(request_auth)]
        elif auth_settings:
            configured = self.configuration.auth_settings()
            settings = [configured[name] for name in auth_settings if name in configured]
        else:
            settings = []
        for setting in settings:
            where = setting.get("in")
            if where == "header":
                headers[str(setting["key"])] = str(setting["value"])
            elif where == "query":
                queries.append((str(setting["key"]), setting["value"]))
            elif where == "cookie":
                headers["Cookie"] = str(setting["value"])
            else:
                raise ApiValueError("authentication token must be in `query`, `header` or `cookie`")

    @staticmethod
    def parameters_to_tuples(
        params: Union[Mapping[str, Any], Sequence[Tuple[str, Any]]],
        collection_formats: Optional[Dict[str, str]],
    ) -> List[Tuple[str, Any]]:
        items = params.items() if isinstance(params, Mapping) else params
        formats = collection_formats or {}
        out: List[Tuple[str, Any]] = []
        for key, value in items:
            fmt = formats.get(key)
            if isinstance(value, (list, tuple)) and fmt:
                if fmt == "multi":
                    out.extend((key, v) for v in value)
                else:
                    sep = {"ssv": " ", "tsv": "\t", "pipes": "|"}.get(fmt, ",")
                    out.append((key, sep.join(str(v) for v in value)))
            else:
                out.append((key, value))
        return out

    def parameters_to_url_query(
        self,
        params: Union[Mapping[str, Any], Sequence[Tuple[str, Any]]],
        collection_formats: Optional[Dict[str, str]] = None,
    ) -> str:
        """Encode query parameters; booleans as ``true``/``false`` as the server expects."""
        pairs = []
        for key, value in self.parameters_to_tuples(params, collection_formats):
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, (dict, list)):
                value = json.dumps(value)
            pairs.append((key, str(value)))
        return urlencode(pairs, quote_via=quote)

    @staticmethod
    def select_header_accept(accepts: List[str]) -> Optional[str]:
        return _prefer_json(accepts)

    @staticmethod
    def select_header_content_type(content_types: List[str]) -> Optional[str]:
        return _prefer_json(content_types)

    # ------------------------------------------------------------------ internals
    def _serialize_body(self, body: Any) -> bytes:
        if isinstance(body, pydantic.BaseModel):
            try:
                return _model_json(body)
            except pydantic_core.PydanticSerializationError as exc:
                interrupt = interrupt_within(exc)
                if interrupt is not None:
                    raise interrupt from None
                where = _unserializable_field(body)
                raise ApiValueError(
                    f"the request body {type(body).__name__} cannot be written as JSON"
                    f"{f': field {where} holds a value of an unsupported type' if where else ''} ({exc})"
                ) from exc
        if isinstance(body, (bytes, str)):
            return body.encode("utf-8") if isinstance(body, str) else body
        return json.dumps(self.sanitize_for_serialization(body), separators=(",", ":")).encode("utf-8")

    def _parse(self, raw: bytes, response_type: str, content_type: Optional[str]) -> Any:
        if response_type == "bytearray":
            return raw
        if response_type == "str":
            return _decode(raw, content_type)
        native = self.NATIVE_TYPES_MAPPING.get(response_type)
        if native is not None:
            value = json.loads(raw)
            return value if native is object else native(value)
        model = _model_class(response_type)
        if not raw.strip():
            raise ValueError("the body is empty")
        from pieces_os_client.models._base import validate_json  # loaded with the model anyway

        # Large bodies: the cyclic collector paused, the result kept out of the young generation.
        return validate_json(model, raw)


#: model classes by response type name, each looked up once (the lookup imports the package)
_MODEL_CLASSES: Dict[str, Any] = {}


def _model_class(name: str) -> Any:
    model = _MODEL_CLASSES.get(name)
    if model is not None:
        return model
    from pieces_os_client import models

    try:
        model = _MODEL_CLASSES[name] = getattr(models, name)
    except AttributeError as exc:
        raise ApiValueError(f"unknown response type {name!r}") from exc
    return model


def _unserializable_field(model: pydantic.BaseModel, prefix: str = "") -> str:
    """The dotted path of the first field of ``model`` that pydantic cannot write, or ''."""
    for name, value in model.__dict__.items():
        path = f"{prefix}{name}"
        if isinstance(value, pydantic.BaseModel):
            inner = _unserializable_field(value, path + ".")
            if inner:
                return inner
            continue
        try:
            pydantic_core.to_json(value)
        except pydantic_core.PydanticSerializationError:
            return repr(path)
    return ""


def _model_json(model: pydantic.BaseModel) -> bytes:
    """A model's wire form as JSON bytes (aliases, ``None`` left out)."""
    from pieces_os_client.models._base import PiecesModel  # loaded with the first model anyway

    if isinstance(model, PiecesModel):
        return model._to_json_bytes()
    return model.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")


def _checked_auth(request_auth: Any) -> Dict[str, Any]:
    """Validate a per-call ``_request_auth`` setting (``{"in", "key", "value", "type"}``)."""
    if not isinstance(request_auth, Mapping):
        raise ApiTypeError(
            "_request_auth must be a dict like {'in': 'header', 'key': 'X-Application-ID', 'value': '...', "
            f"'type': 'api_key'}}, not {type(request_auth).__name__}"
        )
    missing = [name for name in ("in", "key", "value") if name not in request_auth]
    if missing:
        raise ApiValueError(f"_request_auth is missing {', '.join(repr(m) for m in missing)}")
    return dict(request_auth)


def _path_text(name: str, value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    if not isinstance(value, str) or isinstance(value, bool):
        raise ApiTypeError(f"path parameter {name!r} must be a str (or uuid.UUID), not {type(value).__name__}")
    if not value:
        raise ApiValueError(f"path parameter {name!r} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiValueError(f"path parameter {name!r} is not valid Unicode text (it holds a lone surrogate)") from exc
    return value


def _charset(content_type: Optional[str]) -> str:
    match = _CHARSET.search(content_type or "")
    return match.group(1) if match else "utf-8"


def _decode(raw: bytes, content_type: Optional[str]) -> str:
    encoding = _charset(content_type)
    try:
        return raw.decode(encoding, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _format_error(
    exc: Exception,
    response: Any,
    raw: bytes,
    content_type: Optional[str],
    response_type: str,
    request_line: str,
) -> ResponseFormatError:
    text = body_excerpt(raw, _charset(content_type))
    snippet = text[:160] + ("..." if len(text) > 160 else "")
    if isinstance(exc, pydantic.ValidationError):
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            problem = f"is not valid JSON ({errors[0]['msg']})"
        else:
            first = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors[:3]
            )
            more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
            problem = f"does not match {response_type}: {first}{more}"
    else:
        problem = f"could not be read as {response_type}: {exc}"
    where = f" to {request_line}" if request_line else ""
    message = (
        f"Pieces OS answered {response.status}{where} with a body that {problem}. "
        f"Content-Type: {content_type or '(none)'}; {len(raw)} bytes; body starts: {snippet!r}"
    )
    return ResponseFormatError(
        message,
        status=response.status,
        reason=response.reason,
        body=text,
        headers=response.getheaders(),
        content_type=content_type,
    )
