"""The I/O-free part of opening the identifiers WebSocket (``_core.connect``): the URL, the merged
headers, the upgrade request's bytes, the proxy's ``CONNECT`` request and the reading of its
answer, and which SDK error each failure becomes. No sockets: the answers are made up."""

from __future__ import annotations

import ssl
from typing import Any, Dict, List, Mapping, Optional

import pytest

import pieces_os_client
from pieces_os_client._core import handshake
from pieces_os_client._core.connect import IDENTIFIERS_PATH, Endpoint, merge_headers, stream_url
from pieces_os_client._core.websocket import ClientProtocol
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiTimeoutError,
    ApiValueError,
    StreamError,
)

KEY = handshake.new_key(bytes(range(16)))


class Client:
    """What ``Endpoint`` reads of an ``ApiClient``: its configuration and default headers."""

    def __init__(self, default_headers: Optional[Dict[str, str]] = None, **settings: Any) -> None:
        settings.setdefault("host", "http://127.0.0.1:39300")
        self.configuration = pieces_os_client.Configuration(**settings)
        self.default_headers: Dict[str, str] = default_headers or {}


def endpoint(headers: Optional[Mapping[str, Any]] = None, connect_timeout: Optional[float] = None,
             default_headers: Optional[Dict[str, str]] = None, **settings: Any) -> Endpoint:
    return Endpoint(Client(default_headers, **settings), IDENTIFIERS_PATH, headers, connect_timeout)


def head_lines(point: Endpoint, key: str = KEY) -> List[str]:
    request = point.request(key)
    assert request.endswith(b"\r\n\r\n")
    return request.decode("latin-1").split("\r\n")[:-2]


# --------------------------------------------------------------------------- stream_url
@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("https://example.test:8443/base", "wss://example.test:8443/base/conversations/stream/identifiers"),
        ("http://localhost:39300", "ws://localhost:39300/conversations/stream/identifiers"),
        ("http://localhost:39300/", "ws://localhost:39300/conversations/stream/identifiers"),
        ("HTTPS://h", "wss://h/conversations/stream/identifiers"),
        ("ws://h:1/a/", "ws://h:1/a/conversations/stream/identifiers"),
        ("wss://h", "wss://h/conversations/stream/identifiers"),
        ("http://h:1/b?x=1#frag", "ws://h:1/b/conversations/stream/identifiers?x=1"),
    ],
)
def test_stream_url_changes_only_the_scheme(host: str, url: str) -> None:
    assert stream_url(host) == url


def test_stream_url_joins_a_path_with_one_slash() -> None:
    assert stream_url("http://h:1/base/", "other/path") == "ws://h:1/base/other/path"
    assert stream_url("http://h:1", "/p") == "ws://h:1/p"


@pytest.mark.parametrize("host", ["ftp://h:1", "localhost:39300", "http:///nohost", "//h:1/x"])
def test_stream_url_refuses_a_host_that_is_not_http(host: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        stream_url(host)
    assert "it must be an http:// or https:// URL" in str(caught.value)
    assert repr(host) in str(caught.value)


def test_stream_url_masks_credentials_in_its_error() -> None:
    with pytest.raises(ApiValueError) as caught:
        stream_url("ftp://user:secret@h:1")
    assert "secret" not in str(caught.value) and "'ftp://***@h:1'" in str(caught.value)


# --------------------------------------------------------------------------- merge_headers
def test_merge_headers_later_sources_win_without_regard_to_case() -> None:
    merged = merge_headers({"User-Agent": "a", "X-One": 1}, None, {"user-agent": "b"}, {})
    assert merged == {"user-agent": "b", "X-One": "1"}  # the later spelling, values as str


def test_merge_headers_none_removes_a_header() -> None:
    assert merge_headers({"User-Agent": "a", "X-Keep": "k"}, {"USER-AGENT": None}) == {"X-Keep": "k"}
    assert merge_headers({"X": None}, {"x": "back"}) == {"x": "back"}  # a later value brings it back
    assert merge_headers() == {}


# --------------------------------------------------------------------------- the endpoint
def test_the_endpoint_shows_the_url_and_host_with_credentials_masked() -> None:
    point = endpoint(host="http://user:secret@127.0.0.1:39300/base?x=1")
    assert point.host == "http://***@127.0.0.1:39300/base?x=1"
    assert point.url == "ws://***@127.0.0.1:39300/base/conversations/stream/identifiers?x=1"
    assert point.target == "/base/conversations/stream/identifiers?x=1"
    assert (point.target_host, point.target_port) == ("127.0.0.1", 39300)
    assert point.proxy is None and point.ssl_context is None and point.server_name == "127.0.0.1"
    request = point.request(KEY)
    assert b"secret" not in request and b"user" not in request and b"Authorization" not in request


def test_default_ports_and_the_connect_timeout() -> None:
    plain = endpoint(host="http://h.test")
    assert plain.target_port == 80 and plain.timeout == 5.0  # the configuration's connect_timeout
    assert endpoint(host="https://h.test").target_port == 443
    assert endpoint(connect_timeout=0.25).timeout == 0.25  # the stream's option wins
    configured = Client(host="http://h:1", connect_timeout=7)
    assert Endpoint(configured, IDENTIFIERS_PATH, None, None).timeout == 7
    assert Endpoint(configured, IDENTIFIERS_PATH, None, 0.5).timeout == 0.5


def test_the_upgrade_request_bytes() -> None:
    point = endpoint(
        {"X-Trace": "t"},
        default_headers={"User-Agent": "sdk/1"},
        api_key={"application": "app-id"},
    )
    assert head_lines(point) == [
        "GET /conversations/stream/identifiers HTTP/1.1",
        "Host: 127.0.0.1:39300",
        "Origin: http://127.0.0.1:39300",
        "User-Agent: sdk/1",
        "X-Application-ID: app-id",
        "X-Trace: t",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    other = handshake.new_key(bytes(16))
    assert f"Sec-WebSocket-Key: {other}" in head_lines(point, other)  # the key of each connection


def test_per_stream_headers_win_and_none_removes_a_default() -> None:
    point = endpoint({"user-agent": "mine", "X-Application-ID": None, "X-Extra": 3},
                     default_headers={"User-Agent": "sdk/1"}, api_key={"application": "app-id"})
    lines = head_lines(point)
    assert "user-agent: mine" in lines and "User-Agent: sdk/1" not in lines
    assert not any(line.lower().startswith("x-application-id") for line in lines)
    assert "X-Extra: 3" in lines


def test_a_host_or_origin_given_replaces_the_sdks_once() -> None:
    lines = head_lines(endpoint({"host": "front.test", "ORIGIN": "http://app.test"}))
    assert [line for line in lines if line.lower().startswith(("host:", "origin:"))] == [
        "Host: front.test", "Origin: http://app.test"]


def test_handshake_headers_of_the_caller_are_not_sent_twice() -> None:
    lines = head_lines(endpoint({"Upgrade": "h2c", "connection": "close", "Sec-WebSocket-Key": "x",
                                 "Sec-WebSocket-Version": "8", "Content-Length": "5"}))
    lowered = [line.lower() for line in lines]
    assert lowered.count("upgrade: websocket") == 1 and "upgrade: h2c" not in lowered
    assert lowered.count("connection: upgrade") == 1 and "connection: close" not in lowered
    assert sum(line.startswith("sec-websocket-key:") for line in lowered) == 1
    assert lowered.count("sec-websocket-version: 13") == 1 and "sec-websocket-version: 8" not in lowered
    assert not any(line.startswith("content-length") for line in lowered)


def test_a_secure_or_ipv6_target_gets_its_host_and_origin() -> None:
    secure = endpoint(host="https://example.test")
    assert head_lines(secure)[1:3] == ["Host: example.test", "Origin: https://example.test"]
    assert secure.url == "wss://example.test/conversations/stream/identifiers"
    assert isinstance(secure.ssl_context, ssl.SSLContext) and secure.server_name == "example.test"
    assert head_lines(endpoint(host="http://[::1]:39300"))[1:3] == [
        "Host: [::1]:39300", "Origin: http://[::1]:39300"]


@pytest.mark.parametrize(
    ("headers", "named"),
    [({"X-Trace": "a\r\nX-Injected: 1"}, "X-Trace"), ({"Bad Name": "1"}, "Bad Name"),
     ({"X-Nul": "a\x00b"}, "X-Nul"), ({"X-Wide": "\u20ac"}, "X-Wide"), ({"Host": "h\nX: 1"}, "Host")],
)
def test_a_bad_header_is_refused_when_the_endpoint_is_made(headers: Dict[str, str], named: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        endpoint(headers)
    assert repr(named) in str(caught.value)


def test_tls_settings_decide_verification_and_the_server_name() -> None:
    checked = endpoint(host="https://h.test").ssl_context
    assert checked is not None and checked.verify_mode is ssl.CERT_REQUIRED and checked.check_hostname
    off = endpoint(host="https://h.test", verify_ssl=False).ssl_context
    assert off is not None and off.verify_mode is ssl.CERT_NONE and not off.check_hostname
    no_name = endpoint(host="https://h.test", assert_hostname=False).ssl_context
    assert no_name is not None and no_name.verify_mode is ssl.CERT_REQUIRED and not no_name.check_hostname
    assert endpoint(host="https://h.test", assert_hostname="cert.test").server_name == "cert.test"
    both = endpoint(host="https://h.test", assert_hostname="cert.test", tls_server_name="sni.test")
    assert both.server_name == "sni.test"  # tls_server_name is used for both


def test_protocol_carries_the_streams_settings() -> None:
    point = Endpoint(Client(), IDENTIFIERS_PATH, None, None, max_message_size=10, close_timeout=0.1,
                     close_read_limit=7)
    proto = point.protocol(KEY)
    assert (proto.key, proto.max_message_size, proto.close_timeout, proto.close_read_limit) == (KEY, 10, 0.1, 7)


# --------------------------------------------------------------------------- the proxy
def test_the_proxy_and_its_connect_request() -> None:
    point = endpoint(proxy="http://pu:p%40ss@proxy.test:3128", proxy_headers={"X-Proxy-Team": "t"})
    proxy = point.proxy
    assert proxy is not None
    assert (proxy.url, proxy.host, proxy.port, proxy.auth) == (
        "http://***@proxy.test:3128", "proxy.test", 3128, ("pu", "p@ss"))
    assert point.tunnel_request(proxy) == (
        b"CONNECT 127.0.0.1:39300 HTTP/1.1\r\nHost: 127.0.0.1:39300\r\nX-Proxy-Team: t\r\n"
        b"Proxy-Authorization: Basic cHU6cEBzcw==\r\n\r\n")  # base64 of "pu:p@ss"
    assert b"Proxy-Authorization" not in point.request(KEY)  # the proxy's credentials stay with the proxy


def test_a_proxy_without_credentials_and_default_port() -> None:
    point = endpoint(host="https://example.test", proxy="http://proxy.test")
    assert point.proxy is not None and (point.proxy.port, point.proxy.auth) == (80, None)
    assert point.tunnel_request(point.proxy) == (
        b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")


def test_a_proxy_authorization_given_is_not_replaced() -> None:
    point = endpoint(proxy="http://pu:pw@proxy.test:3128", proxy_headers={"proxy-authorization": "Bearer tok"})
    assert point.proxy is not None
    request = point.tunnel_request(point.proxy)
    assert b"proxy-authorization: Bearer tok\r\n" in request and b"Basic" not in request


def test_an_ipv6_target_is_bracketed_in_connect() -> None:
    point = endpoint(host="http://[::1]:39300", proxy="http://proxy.test:3128")
    assert point.proxy is not None
    assert point.tunnel_request(point.proxy).startswith(b"CONNECT [::1]:39300 HTTP/1.1\r\nHost: [::1]:39300\r\n")


@pytest.mark.parametrize("proxy", ["https://u:pw@proxy.test:3128", "socks5://proxy.test:1080"])
def test_only_http_proxies_are_supported(proxy: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        endpoint(proxy=proxy)
    message = str(caught.value)
    assert "the identifiers stream supports http:// proxies only" in message and "pw" not in message


def test_the_proxy_answer_is_read_to_a_bound() -> None:
    point = endpoint(proxy="http://u:pw@proxy.test:3128")
    proxy = point.proxy
    assert proxy is not None
    point.check_tunnel_answer(b"HTTP/1.1 200 OK\r\n", b"more", proxy)
    point.check_tunnel_answer(b"x" * 65536, b"more", proxy)  # 64 KiB so far: still read
    with pytest.raises(OSError, match=r"the proxy http://\*\*\*@proxy.test:3128 closed the connection during CONNECT"):
        point.check_tunnel_answer(b"HTTP/1.1 200", b"", proxy)
    with pytest.raises(OSError, match="during CONNECT"):
        point.check_tunnel_answer(b"x" * 65537, b"more", proxy)


@pytest.mark.parametrize("answer", [b"HTTP/1.1 200 Connection established\r\n\r\n", b"HTTP/1.0 200\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nVia: p\r\n\r\n"])
def test_a_200_opens_the_tunnel(answer: bytes) -> None:
    endpoint(proxy="http://proxy.test:3128").check_tunnel_status(answer)


@pytest.mark.parametrize(
    ("answer", "shown"),
    [(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
      "'HTTP/1.1 407 Proxy Authentication Required'"),
     (b"HTTP/1.1 2000 OK\r\n\r\n", "'HTTP/1.1 2000 OK'"),
     (b"garbage\r\n\r\n", "'garbage'"),
     (b"\r\n\r\n", "''")],
)
def test_any_other_answer_is_a_connection_error_naming_the_status(answer: bytes, shown: str) -> None:
    point = endpoint(proxy="http://u:pw@proxy.test:3128")
    with pytest.raises(ApiConnectionError) as caught:
        point.check_tunnel_status(answer)
    error = caught.value
    assert not isinstance(error, ApiTimeoutError)
    assert str(error) == (f"The proxy http://***@proxy.test:3128 refused to open a tunnel to 127.0.0.1:39300 "
                          f"for the identifiers stream: {shown}.")
    assert (error.host, error.url, error.method) == (point.host, point.url, "GET")


# --------------------------------------------------------------------------- refused handshakes
def answered(point: Endpoint, data: bytes) -> ClientProtocol:
    proto = point.protocol(KEY)
    proto.receive_data(data)
    return proto


def test_no_answer_at_all() -> None:
    point = endpoint(host="http://user:secret@127.0.0.1:39300")
    error = point.handshake_error(point.protocol(KEY))
    assert type(error) is StreamError
    assert str(error) == ("The server at http://***@127.0.0.1:39300 did not answer the WebSocket handshake for "
                          "ws://***@127.0.0.1:39300/conversations/stream/identifiers properly: no answer")


def test_an_answer_that_is_not_http() -> None:
    point = endpoint()
    error = point.handshake_error(answered(point, b"SSH-2.0-OpenSSH_9.6\r\n\r\n"))
    assert type(error) is StreamError
    assert str(error).startswith(f"The server at {point.host} did not answer the WebSocket handshake for "
                                 f"{point.url} properly: not HTTP")


def test_a_refusal_shows_its_status_and_the_start_of_its_body() -> None:
    point = endpoint()
    body = b"no such\n  route" + b"!" * 1000
    proto = answered(point, b"HTTP/1.1 404 Not Found\r\nContent-Length: 1016\r\n\r\n" + body)
    error = point.handshake_error(proto)
    assert type(error) is StreamError
    text = str(error)
    assert text.startswith(f"The server at {point.host} refused to open the identifiers stream at {point.url}: "
                           "HTTP 404 Not Found: no such route!!!")
    assert text.endswith("....")  # the body is cut short (one_line's "..." then the full stop)
    assert len(text) < 400


def test_a_redirect_is_refused_naming_its_location() -> None:
    point = endpoint()
    proto = answered(point, b"HTTP/1.1 307 Temporary Redirect\r\nLocation: ws://u:pw@other:8080/x\r\n"
                            b"Content-Length: 0\r\n\r\n")
    text = str(point.handshake_error(proto))
    assert "HTTP 307 Temporary Redirect, a redirect to 'ws://***@other:8080/x'" in text
    assert "redirects of the WebSocket handshake are not followed" in text and "pw" not in text


def test_a_bad_101_shows_no_body() -> None:
    point = endpoint()
    response = handshake.Response(101, "Switching Protocols", {})
    assert str(point.refused("HTTP 101 Switching Protocols with a wrong Sec-WebSocket-Accept", response,
                             "frames")).endswith("with a wrong Sec-WebSocket-Accept.")
    refused = handshake.Response(403, "Forbidden", {})
    assert str(point.refused("HTTP 403 Forbidden", refused, "  \n ")).endswith(": HTTP 403 Forbidden.")
    assert str(point.refused("HTTP 403 Forbidden", refused, "go\r\naway")).endswith(
        ": HTTP 403 Forbidden: go away.")


@pytest.mark.parametrize(("length", "read"), [(None, 0), ("12", 12), ("100000", 400), ("-5", 0), ("abc", 0)])
def test_how_much_of_a_refusal_body_is_read(length: Optional[str], read: int) -> None:
    headers = {} if length is None else {"content-length": length}
    assert Endpoint.body_length(handshake.Response(500, "Oops", headers)) == read


# --------------------------------------------------------------------------- failures by phase
def test_a_timeout_names_the_step_and_the_setting() -> None:
    point = endpoint(connect_timeout=2)
    for exc in (TimeoutError("timed out"), ApiTimeoutError("read timed out", host="x")):
        error = point.error(exc, "the WebSocket handshake")
        assert type(error) is ApiTimeoutError and isinstance(error, ApiConnectionError)
        assert str(error) == (
            f"Timed out after 2 s (connect_timeout) during the WebSocket handshake opening the identifiers "
            f"stream at {point.url}. Pieces OS at {point.host} did not answer in time.")
        assert (error.host, error.url, error.method) == (point.host, point.url, "GET")
    assert "during the proxy tunnel (CONNECT) opening" in str(point.error(TimeoutError(), "the proxy tunnel (CONNECT)"))
    assert "Timed out after 0.25 s " in str(endpoint(connect_timeout=0.25).error(TimeoutError(), "x"))


@pytest.mark.parametrize("exc", [ssl.SSLError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
                                 ssl.SSLCertVerificationError("hostname mismatch"),
                                 ssl.CertificateError("bad\ncert")])
def test_a_tls_failure_points_at_the_tls_settings(exc: Exception) -> None:
    point = endpoint(host="https://h.test")
    error = point.error(exc, "the TLS handshake")
    assert type(error) is ApiConnectionError
    text = str(error)
    assert text.startswith(f"The TLS handshake for the identifiers stream at {point.url} failed: ")
    assert text.endswith(". Check verify_ssl, ssl_ca_cert and the server's certificate.")
    assert "\n" not in text


def test_an_os_error_asks_whether_pieces_os_runs() -> None:
    point = endpoint(host="http://user:secret@127.0.0.1:39300")
    error = point.error(ConnectionRefusedError(111, "Connection refused"), "the TCP connection")
    assert type(error) is ApiConnectionError
    assert str(error) == (
        f"Could not open the identifiers stream at {point.url}: [Errno 111] Connection refused. Is Pieces OS "
        f"running at {point.host}? Start it, or set Configuration(host=...) to where it listens.")
    assert "secret" not in str(error) and (error.host, error.url, error.method) == (point.host, point.url, "GET")
    assert "at " + point.url + ": OSError. Is" in str(point.error(OSError(), "the TCP connection"))


def test_anything_else_is_a_stream_error_naming_its_type() -> None:
    point = endpoint()
    error = point.error(ValueError("bad\nthing"), "the WebSocket handshake")
    assert type(error) is StreamError
    assert str(error) == f"Could not open the identifiers stream at {point.url}: ValueError: bad thing"
