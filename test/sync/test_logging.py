"""Logging is safe: debug output never carries credentials and never reaches outside our logger."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator

import pytest

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import ApiConnectionError, ServiceException

SECRET = "secret-id"
PACKAGE_LOGGER = logging.getLogger("pieces_os_client")



@pytest.fixture(autouse=True)
def restore_package_logger() -> Iterator[None]:
    level, handlers = PACKAGE_LOGGER.level, list(PACKAGE_LOGGER.handlers)
    yield
    PACKAGE_LOGGER.setLevel(level)
    PACKAGE_LOGGER.handlers[:] = handlers


def _our_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("pieces_os_client")]


def test_debug_logs_requests_and_responses_without_the_application_id(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pieces_os_client")
    config = Configuration(host=emu.url, debug=True, api_key={"application": SECRET})
    with ApiClient(config) as client:
        api = ConversationsApi(client)
        api.conversations_create_specific_conversation(seeded_conversation={"name": "logged"})
        api.conversations_identifiers_snapshot(_headers={"Authorization": f"Bearer {SECRET}", "Cookie": SECRET})
        api.conversations_snapshot(
            _request_auth={"in": "header", "key": "X-Application-ID", "value": SECRET, "type": "api_key"}
        )
        emu.fail_next(500, body="boom")
        with pytest.raises(ServiceException):
            api.conversations_create_specific_conversation()
    lines = _our_lines(caplog)
    requests = [line for line in lines if line.startswith("request ")]
    responses = [line for line in lines if line.startswith("response ")]
    assert len(requests) == 4 and len(responses) == 4
    assert requests[0].startswith(f"request POST {emu.url}/conversations/create headers=")
    assert "'X-Application-ID': '***'" in requests[0]
    assert "'Authorization': '***'" in requests[1] and "'Cookie': '***'" in requests[1]
    assert "'X-Application-ID': '***'" in requests[2]
    assert responses[0].startswith(f"response POST {emu.url}/conversations/create -> 200 in ")
    assert responses[3].startswith(f"response POST {emu.url}/conversations/create -> 500 in ")
    assert not [line for line in caplog.text.splitlines() if SECRET in line]
    # the request really carried the secret: it is only the log that hides it
    assert emu.request_count() == 4


def test_connection_errors_do_not_echo_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = Configuration(host="http://127.0.0.1:9", debug=True, api_key={"application": SECRET}, max_retries=0)
    with ApiClient(config) as client, pytest.raises(ApiConnectionError) as info:
        ConversationsApi(client).conversations_identifiers_snapshot()
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert SECRET not in caplog.text
    assert SECRET not in repr(config)


def test_debug_touches_nothing_outside_our_logger(emu: Emulator) -> None:
    urllib3_logger = logging.getLogger("urllib3")
    root = logging.getLogger()
    before = (
        http.client.HTTPConnection.debuglevel,
        urllib3_logger.level,
        list(urllib3_logger.handlers),
        root.level,
        list(root.handlers),
    )
    config = Configuration(host=emu.url, debug=True)
    with ApiClient(config) as client:
        ConversationsApi(client).conversations_identifiers_snapshot()
    after = (
        http.client.HTTPConnection.debuglevel,
        urllib3_logger.level,
        list(urllib3_logger.handlers),
        root.level,
        list(root.handlers),
    )
    assert after == before
    assert PACKAGE_LOGGER.level == logging.DEBUG


def test_turning_debug_off_removes_our_handler_and_restores_the_level() -> None:
    PACKAGE_LOGGER.setLevel(logging.INFO)  # the application's own choice
    handlers_before = list(PACKAGE_LOGGER.handlers)
    config = Configuration(debug=True)
    added = [h for h in PACKAGE_LOGGER.handlers if h not in handlers_before]
    assert len(added) == 1 and isinstance(added[0], logging.StreamHandler)
    config.debug = True  # idempotent: still one handler
    assert len(PACKAGE_LOGGER.handlers) == len(handlers_before) + 1
    config.debug = False
    assert PACKAGE_LOGGER.handlers == handlers_before
    assert PACKAGE_LOGGER.level == logging.INFO


def test_debug_false_leaves_an_application_level_alone() -> None:
    PACKAGE_LOGGER.setLevel(logging.INFO)
    Configuration(debug=False)
    assert PACKAGE_LOGGER.level == logging.INFO


def test_logger_file_gets_the_redacted_lines(emu: Emulator, tmp_path: pytest.TempPathFactory) -> None:
    log_file = tmp_path / "sdk.log"  # type: ignore[operator]
    config = Configuration(host=emu.url, api_key={"application": SECRET})
    config.logger_file = str(log_file)
    config.debug = True
    try:
        with ApiClient(config) as client:
            ConversationsApi(client).conversations_identifiers_snapshot()
    finally:
        config.debug = False
        config.logger_file = None
    text = log_file.read_text()
    assert "request GET" in text and "X-Application-ID': '***'" in text
    assert SECRET not in text
