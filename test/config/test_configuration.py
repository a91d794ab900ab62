"""Configuration: every setting is a keyword and an attribute, and every value is checked at the door."""

from __future__ import annotations

import copy
import inspect
import math
import re
from typing import Any, Type, get_type_hints

import pytest
from testkit import ROOT
from urllib3.util.retry import Retry

from pieces_os_client import ApiTypeError, ApiValueError, Configuration
from pieces_os_client.configuration import SETTINGS, ConfigurationSettings

# The official SDK's constructor, in its order (the official package's Configuration.__init__).
OFFICIAL_POSITIONAL = [
    "host", "api_key", "api_key_prefix", "username", "password", "access_token", "server_index",
    "server_variables", "server_operation_index", "server_operation_variables", "ignore_operation_servers",
    "ssl_ca_cert", "retries", "ca_cert_data",
]
# Attributes the official Configuration sets in its constructor (handlers and loggers aside).
OFFICIAL_ATTRIBUTES = [
    "temp_folder_path", "refresh_api_key_hook", "logger_format", "logger_file", "debug", "verify_ssl",
    "ssl_ca_cert", "cert_file", "key_file", "assert_hostname", "tls_server_name", "connection_pool_maxsize",
    "proxy", "proxy_headers", "safe_chars_for_path_param", "retries", "client_side_validation",
    "socket_options", "datetime_format", "date_format",
]


def _documented_settings() -> list[str]:
    """Every setting named in the first column of a table in docs/configuration.md."""
    text = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    names: list[str] = []
    for cell in re.findall(r"^\| (`[^|]+`)[^|]*\|", text, flags=re.M):
        names += re.findall(r"`(\w+)`", cell)
    return names


# ---------------------------------------------------------------- every setting is a keyword


def test_official_positional_order_is_kept() -> None:
    params = list(inspect.signature(Configuration).parameters.values())
    assert [p.name for p in params[: len(OFFICIAL_POSITIONAL)]] == OFFICIAL_POSITIONAL
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[: len(OFFICIAL_POSITIONAL)])
    config = Configuration("http://127.0.0.1:1", {"application": "app"}, None, None, None, "tok")
    assert config.host == "http://127.0.0.1:1" and config.api_key == {"application": "app"}
    assert config.access_token == "tok"


@pytest.mark.parametrize("name", sorted(set(_documented_settings()) | set(OFFICIAL_ATTRIBUTES)))
def test_every_documented_setting_is_a_keyword_and_an_attribute(name: str) -> None:
    host = "http://127.0.0.1:1"
    value = "http://127.0.0.1:2" if name == "host" else getattr(Configuration(host=host), name)
    config = Configuration(**{"host": host, name: value})
    assert getattr(config, name) == value


def test_pool_settings_as_keywords() -> None:
    # Configuration(connection_pool_maxsize=4) raised TypeError: only assignment worked
    config = Configuration(host="http://127.0.0.1:1", connection_pool_maxsize=4, pool_timeout=2.5)
    assert (config.connection_pool_maxsize, config.pool_timeout) == (4, 2.5)
    assert Configuration().pool_timeout == 30.0


def test_the_settings_table_the_typed_keywords_and_the_attributes_agree() -> None:
    # a setting added to SETTINGS must also be typed for callers and declared on the class
    assert set(ConfigurationSettings.__annotations__) == set(SETTINGS) | {"discover"}
    declared = set(get_type_hints(Configuration))
    assert set(SETTINGS) - {"logger_file"} <= declared  # logger_file is a property


def test_an_unknown_keyword_is_an_api_type_error_listing_the_settings() -> None:
    with pytest.raises(ApiTypeError) as info:
        Configuration(conect_timeout=5)  # type: ignore[call-arg]
    message = str(info.value)
    assert "conect_timeout" in message and "connect_timeout" in message and "pool_timeout" in message


# ---------------------------------------------------------------- values checked at the door

BAD_VALUES = [
    ("host", 123, ApiTypeError),
    ("host", b"http://localhost:1000", ApiTypeError),
    ("host", "", ApiValueError),
    ("host", "localhost:1000", ApiValueError),
    ("host", "ftp://localhost", ApiValueError),
    ("host", "http://", ApiValueError),
    ("host", "http://localhost:port", ApiValueError),
    ("connect_timeout", "5", ApiTypeError),
    ("connect_timeout", True, ApiTypeError),
    ("connect_timeout", None, ApiTypeError),
    ("connect_timeout", 0, ApiValueError),
    ("connect_timeout", -1.0, ApiValueError),
    ("connect_timeout", math.nan, ApiValueError),
    ("read_timeout", math.inf, ApiValueError),
    ("read_timeout", [60], ApiTypeError),
    ("pool_timeout", 0, ApiValueError),
    ("pool_timeout", "30", ApiTypeError),
    ("max_retries", -1, ApiValueError),
    ("max_retries", 1.5, ApiTypeError),
    ("max_retries", False, ApiTypeError),
    ("retries", -1, ApiValueError),
    ("retries", "3", ApiTypeError),
    ("connection_pool_maxsize", 0, ApiValueError),
    ("connection_pool_maxsize", 2.0, ApiTypeError),
    ("connection_pool_maxsize", None, ApiTypeError),
    ("backoff_factor", -0.1, ApiValueError),
    ("backoff_max", math.inf, ApiValueError),
    ("backoff_jitter", "0.1", ApiTypeError),
    ("refresh_api_key_hook", 5, ApiTypeError),
    # every other setting a transport or a handler would choke on later, with a raw TypeError,
    # ValueError or OSError naming neither the setting nor the value
    ("discovery_timeout", 0, ApiValueError),
    ("discovery_timeout", "5", ApiTypeError),
    ("api_key", 5, ApiTypeError),
    ("api_key", "my-app", ApiTypeError),
    ("api_key_prefix", ["Bearer"], ApiTypeError),
    ("username", 5, ApiTypeError),
    ("proxy", 5, ApiTypeError),
    ("proxy", "ftp://proxy.example", ApiValueError),
    ("proxy", "proxy.example:3128", ApiValueError),
    ("proxy_headers", "Proxy-Authorization: x", ApiTypeError),
    ("socket_options", 5, ApiTypeError),
    ("ssl_ca_cert", 5, ApiTypeError),
    ("ca_cert_data", 5, ApiTypeError),
    ("cert_file", 5, ApiTypeError),
    ("key_file", 5, ApiTypeError),
    ("assert_hostname", 5, ApiTypeError),
    ("tls_server_name", 5, ApiTypeError),
    ("safe_chars_for_path_param", None, ApiTypeError),
    ("datetime_format", 5, ApiTypeError),
    ("temp_folder_path", 5, ApiTypeError),
    ("logger_format", "%(message", ApiValueError),
    ("logger_file", 5, ApiTypeError),
    ("logger_file", "/no/such/folder/sdk.log", ApiValueError),
]


def _ids(case: Any) -> str:
    return repr(case)


@pytest.mark.parametrize(("name", "value", "error"), BAD_VALUES, ids=_ids)
def test_a_bad_value_in_the_constructor_names_the_setting_and_the_value(
    name: str, value: Any, error: Type[Exception]
) -> None:
    with pytest.raises(error) as info:
        Configuration(**{name: value})
    assert type(info.value) is error
    assert name in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize(("name", "value", "error"), BAD_VALUES, ids=_ids)
def test_a_bad_value_assigned_later_is_refused_and_the_old_one_kept(
    name: str, value: Any, error: Type[Exception]
) -> None:
    config = Configuration(host="http://127.0.0.1:1")
    before = getattr(config, name)
    with pytest.raises(error) as info:
        setattr(config, name, value)
    assert name in str(info.value) and repr(value) in str(info.value)
    assert getattr(config, name) == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("host", "https://pieces.example:39300/base/"),
        ("host", "http://[::1]:1000"),
        ("connect_timeout", 1),
        ("read_timeout", 0.5),
        ("pool_timeout", 120),
        ("max_retries", 0),
        ("retries", 0),
        ("retries", None),
        ("connection_pool_maxsize", 1),
        ("backoff_factor", 0),
        ("backoff_max", 0.0),
        ("refresh_api_key_hook", None),
    ],
    ids=_ids,
)
def test_good_values_are_taken_as_given(name: str, value: Any) -> None:
    config = Configuration(**{name: value})
    expected = value.rstrip("/") if name == "host" else value
    assert getattr(config, name) == expected
    setattr(config, name, value)
    assert getattr(config, name) == expected


def test_a_retry_policy_object_is_taken_as_the_policy() -> None:
    policy = Retry(total=7)
    config = Configuration(host="http://127.0.0.1:1", retries=policy)
    assert config.retry_policy() is policy


def test_a_validated_configuration_still_copies() -> None:
    config = Configuration(host="http://127.0.0.1:1", connect_timeout=3, pool_timeout=4)
    clone = copy.deepcopy(config)
    assert (clone.host, clone.connect_timeout, clone.pool_timeout) == ("http://127.0.0.1:1", 3, 4)
    clone.pool_timeout = 9
    assert config.pool_timeout == 4


def test_a_misspelled_setting_gets_a_suggestion() -> None:
    with pytest.raises(ApiTypeError) as caught:
        Configuration(conect_timeout=3)  # type: ignore[call-arg]
    assert str(caught.value).startswith(
        "Configuration(): unknown setting: conect_timeout (did you mean connect_timeout?). Valid settings: "
    )


def test_a_host_name_no_resolver_can_take_is_refused_at_the_door_naming_it() -> None:
    long_host = "http://" + "a" * 300 + ":39300"
    with pytest.raises(ApiValueError) as info:
        Configuration(host=long_host)
    message = str(info.value)
    assert message.startswith("host 'http://aaaa") and "... (313 characters)" in message
    assert "has a host name of 300 characters; DNS allows at most 253" in message and "codec" not in message
    with pytest.raises(ApiValueError, match=re.escape("whose label 'aaaaaaaaaaaaaaaaaaaa...' is 64 characters")):
        Configuration(host="http://" + "a" * 64 + ".example")
    with pytest.raises(ApiValueError, match=r"proxy 'http://aaaa.*has a host name of 300 characters"):
        Configuration(proxy=long_host)
    # names that resolvers take are left alone
    for good in ("http://" + "a" * 63 + ".example", "http://pieces.local.:1", "http://[fe80::1%25eth0]:1",
                 "http://b\u00fccher.example"):
        assert Configuration(host=good).host == good


def test_a_proxy_header_that_would_inject_lines_is_refused_without_echoing_it() -> None:
    with pytest.raises(ApiValueError) as info:
        Configuration(proxy="http://proxy.example:3128", proxy_headers={"Proxy-Authorization": "Basic s3cr\r\nX: 1"})
    assert str(info.value) == ("proxy_headers: the value of header 'Proxy-Authorization' contains a line break or "
                               "NUL, which HTTP forbids")


def test_tls_files_that_cannot_be_loaded_are_an_api_value_error_naming_the_setting(tmp_path: Any) -> None:
    import asyncio

    from pieces_os_client import ApiClient, ConversationsApi
    from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi

    not_a_cert = tmp_path / "not-a-cert.pem"
    not_a_cert.write_text("hello")
    cases = [
        ({"ssl_ca_cert": str(tmp_path / "missing.pem")}, f"ssl_ca_cert {str(tmp_path / 'missing.pem')!r} cannot be "
                                                        "loaded as CA certificates: No such file or directory"),
        ({"ca_cert_data": "hello"}, "ca_cert_data cannot be loaded as CA certificates: "),
        ({"cert_file": str(not_a_cert)}, f"cert_file {str(not_a_cert)!r} (with key_file None) cannot be loaded as a "
                                         "client certificate: "),
    ]
    for settings, words in cases:
        config = Configuration(host="https://127.0.0.1:1", max_retries=0, **settings)

        async def call(config: Configuration = config) -> None:
            async with AsyncApiClient(config) as client:
                await AsyncConversationsApi(client).conversations_identifiers_snapshot()

        with pytest.raises(ApiValueError) as on_async:
            asyncio.run(call())
        with ApiClient(config) as client, pytest.raises(ApiValueError) as on_stream:
            ConversationsApi(client).conversations_stream_identifiers(reconnect=False)
        for caught in (on_async, on_stream):
            assert str(caught.value).startswith(words), str(caught.value)


@pytest.mark.parametrize(("name", "value", "words"), [
    ("access_token", 12345, "access_token must be a str or None, not int"),
    ("access_token", b"tok-bytes", "access_token must be a str or None, not bytes"),
    ("password", 12345, "password must be a str or None, not int"),
    ("api_key", {"application": 12345}, "api_key['application'] must be a str or None, not int"),
], ids=_ids)
def test_a_credential_of_the_wrong_type_is_named_but_never_shown(name: str, value: Any, words: str) -> None:
    for assign in (False, True):
        with pytest.raises(ApiTypeError) as info:
            if assign:
                setattr(Configuration(host="http://127.0.0.1:1"), name, value)
            else:
                Configuration(**{name: value})
        assert str(info.value) == words
