"""The emulator's HTTP side, over real loopback sockets (http.client / raw sockets / urllib3)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from testkit import ROOT
from testkit.emulator import DEMO_ASSET, call, post_json, raw_exchange

from pieces_os_client.emulator import Emulator
from pieces_os_client.testing import running_emulator


# ----------------------------------------------------------------------------- endpoints
def test_create_from_asset_returns_grounded_conversation(pieces_emulator: Emulator) -> None:
    reply = call(pieces_emulator, "POST", f"/conversations/create/from_asset/{DEMO_ASSET}")
    assert reply.status == 200
    out = reply.json()
    ref = out["conversation"]
    conversation = ref["reference"]
    assert ref["id"] == conversation["id"]
    assert conversation["type"] == "COPILOT"
    assert conversation["created"]["value"].endswith("Z") and conversation["created"]["readable"]
    assert conversation["assets"]["iterable"][0]["id"] == DEMO_ASSET
    assert conversation["assets"]["indices"] == {DEMO_ASSET: 0}
    [message] = conversation["messages"]["iterable"]
    body = message["reference"]
    assert body["role"] == "ASSISTANT"
    assert body["conversation"] == {"id": conversation["id"]}
    summary = body["fragment"]["string"]["raw"]
    assert "Retry an HTTP call with exponential backoff" in summary
    assert "13 lines of Python" in summary
    assert "import random" in summary
    assert pieces_emulator.conversation_ids() == [conversation["id"]]


def test_create_from_asset_is_deterministic_apart_from_ids(pieces_emulator: Emulator) -> None:
    def summary() -> str:
        out = call(pieces_emulator, "POST", f"/conversations/create/from_asset/{DEMO_ASSET}").json()
        return str(out["conversation"]["reference"]["messages"]["iterable"][0]["reference"]["fragment"])

    assert summary() == summary()


def test_create_from_unknown_asset_is_500_text(pieces_emulator: Emulator) -> None:
    reply = call(pieces_emulator, "POST", "/conversations/create/from_asset/no-such-asset")
    assert reply.status == 500
    assert reply.headers["content-type"].startswith("text/plain")
    assert "no-such-asset" in reply.text
    assert pieces_emulator.conversation_ids() == []


@pytest.mark.parametrize("body", [None, b"", b"   ", b"null"])
def test_create_without_seed(pieces_emulator: Emulator, body: bytes | None) -> None:
    reply = call(pieces_emulator, "POST", "/conversations/create", body, {"Content-Type": "application/json"})
    assert reply.status == 200
    conversation = reply.json()
    assert conversation["type"] == "COPILOT"
    assert conversation["name"] == "New Conversation"
    assert conversation["messages"] == {"iterable": [], "indices": {}}
    assert pieces_emulator.conversation_ids() == [conversation["id"]]


def test_create_with_seed_keeps_name_and_messages(pieces_emulator: Emulator) -> None:
    seed = {
        "type": "COPILOT",
        "name": "Design review",
        "favorited": True,
        "messages": [
            {"role": "USER", "fragment": {"string": {"raw": "What does this do?"}}},
            {"role": "ASSISTANT", "fragment": {"string": {"raw": "It retries."}}, "sentiment": "LIKE"},
        ],
    }
    conversation = post_json(pieces_emulator, "/conversations/create", seed).json()
    assert conversation["name"] == "Design review"
    assert conversation["favorited"] is True
    messages = [item["reference"] for item in conversation["messages"]["iterable"]]
    assert [m["role"] for m in messages] == ["USER", "ASSISTANT"]
    assert messages[0]["fragment"]["string"]["raw"] == "What does this do?"
    assert messages[1]["sentiment"] == "LIKE"
    assert conversation["messages"]["indices"] == {m["id"]: i for i, m in enumerate(messages)}


def test_create_without_transferables_omits_raw_text(pieces_emulator: Emulator) -> None:
    seed = {"type": "COPILOT", "messages": [{"role": "USER", "fragment": {"string": {"raw": "secret"}}}]}
    reply = post_json(pieces_emulator, "/conversations/create?transferables=false", seed)
    assert reply.status == 200
    assert b"secret" not in reply.body
    [item] = reply.json()["messages"]["iterable"]
    assert "string" not in item["reference"]["fragment"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "COPILOT", "messages": [{"role": "USER"}]}', "messages.0.fragment"),
        (b'{"type": "COPILOT", "name": 42}', "name"),
        (b'{"type": "COPILOT", "messages": "nope"}', "messages"),
    ],
)
def test_create_with_invalid_body_is_500_with_reason(pieces_emulator: Emulator, body: bytes, expected: str) -> None:
    reply = call(pieces_emulator, "POST", "/conversations/create", body, {"Content-Type": "application/json"})
    assert reply.status == 500
    assert reply.headers["content-type"].startswith("text/plain")
    assert expected in reply.text
    assert pieces_emulator.conversation_ids() == []


def test_invalid_transferables_value_is_500(pieces_emulator: Emulator) -> None:
    reply = call(pieces_emulator, "GET", "/conversations?transferables=maybe")
    assert reply.status == 500
    assert "transferables" in reply.text


def test_identifiers_and_snapshot_follow_creates_and_deletes(pieces_emulator: Emulator) -> None:
    assert call(pieces_emulator, "GET", "/conversations/identifiers").json() == {"iterable": [], "indices": {}}
    a = call(pieces_emulator, "POST", f"/conversations/create/from_asset/{DEMO_ASSET}").json()["conversation"]["id"]
    b = post_json(pieces_emulator, "/conversations/create", {"type": "COPILOT", "name": "b"}).json()["id"]
    ids = call(pieces_emulator, "GET", "/conversations/identifiers").json()
    assert ids == {"iterable": [{"id": a}, {"id": b}], "indices": {a: 0, b: 1}}

    snapshot = call(pieces_emulator, "GET", "/conversations?transferables=true").json()
    assert [c["id"] for c in snapshot["iterable"]] == [a, b]
    assert snapshot["indices"] == {a: 0, b: 1}
    assert "string" in snapshot["iterable"][0]["messages"]["iterable"][0]["reference"]["fragment"]
    lean = call(pieces_emulator, "GET", "/conversations?transferables=false").json()
    assert [c["id"] for c in lean["iterable"]] == [a, b]
    assert "string" not in lean["iterable"][0]["messages"]["iterable"][0]["reference"]["fragment"]

    reply = call(pieces_emulator, "POST", f"/conversations/{a}/delete")
    assert (reply.status, reply.body) == (204, b"")
    assert call(pieces_emulator, "GET", "/conversations/identifiers").json()["iterable"] == [{"id": b}]
    assert [c["id"] for c in call(pieces_emulator, "GET", "/conversations").json()["iterable"]] == [b]


def test_delete_unknown_is_500_text(pieces_emulator: Emulator) -> None:
    reply = call(pieces_emulator, "POST", "/conversations/nope/delete")
    assert reply.status == 500
    assert reply.headers["content-type"].startswith("text/plain")
    assert "'nope'" in reply.text


def test_well_known_endpoints(pieces_emulator: Emulator) -> None:
    health = call(pieces_emulator, "GET", "/.well-known/health")
    assert (health.status, health.text) == (200, "ok")
    assert health.headers["content-type"].startswith("text/plain")
    version = call(pieces_emulator, "GET", "/.well-known/version")
    assert (version.status, version.text) == (200, "11.0.0")
    assert call(pieces_emulator, "GET", "/.well-known/stream/health").status == 200


def test_plain_get_on_the_stream_path_explains_itself(pieces_emulator: Emulator) -> None:
    reply = call(pieces_emulator, "GET", "/conversations/stream/identifiers")
    assert reply.status == 200
    assert "WebSocket" in reply.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nothing/here", 404),
        ("GET", "/conversations/", 404),
        ("POST", "/conversations", 405),
        ("GET", "/conversations/create", 405),
        ("GET", f"/conversations/create/from_asset/{DEMO_ASSET}", 405),
        ("DELETE", "/conversations/x/delete", 405),
    ],
)
def test_unknown_paths_and_methods(pieces_emulator: Emulator, method: str, path: str, status: int) -> None:
    assert call(pieces_emulator, method, path).status == status


def test_version_is_configurable() -> None:
    with running_emulator(version="10.1.2") as emu:
        assert call(emu, "GET", "/.well-known/version").text == "10.1.2"


# ----------------------------------------------------------------------------- HEAD
GET_ROUTES = [
    "/.well-known/health",
    "/.well-known/version",
    "/.well-known/stream/health",
    "/conversations",
    "/conversations?transferables=false",
    "/conversations/identifiers",
    "/conversations/stream/identifiers",
]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_every_get_route_with_its_status_and_headers(pieces_emulator: Emulator, path: str) -> None:
    pieces_emulator.create_conversation({"name": "something to list"})
    get = call(pieces_emulator, "GET", path)
    head = call(pieces_emulator, "HEAD", path)
    assert get.status == head.status == 200
    assert get.body and head.body == b""
    for name in ("content-type", "content-length"):
        assert head.headers[name] == get.headers[name], name
    assert int(head.headers["content-length"]) == len(get.body)
    assert pieces_emulator.request_count("HEAD", path.partition("?")[0]) == 1


def test_head_sends_no_body_bytes_on_the_wire(pieces_emulator: Emulator) -> None:
    # A body after a HEAD answer would be read as the start of the next response on a kept-alive
    # connection; http.client never reads one, so look at the raw bytes.
    raw = raw_exchange(pieces_emulator, b"HEAD /.well-known/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 2" in head
    assert rest == b""


def test_head_health_is_found_by_a_urllib3_port_scan_as_the_official_sdk_does(pieces_emulator: Emulator) -> None:
    with urllib3.PoolManager(retries=False, timeout=5) as http:
        reply = http.request("HEAD", f"{pieces_emulator.url}/.well-known/health")
        assert reply.status == 200 and reply.data == b""
        # and the connection is still good for the next request (no stray body bytes on it)
        again = http.request("GET", f"{pieces_emulator.url}/.well-known/health")
        assert (again.status, again.data) == (200, b"ok")


@pytest.mark.parametrize(
    ("path", "allow"), [("/conversations/create", "POST"), (f"/conversations/create/from_asset/{DEMO_ASSET}", "POST")]
)
def test_head_on_a_post_route_is_405(pieces_emulator: Emulator, path: str, allow: str) -> None:
    reply = call(pieces_emulator, "HEAD", path)
    assert (reply.status, reply.headers["allow"], reply.body) == (405, allow, b"")


def test_a_get_route_says_it_allows_head(pieces_emulator: Emulator) -> None:
    reply = call(pieces_emulator, "POST", "/.well-known/health")
    assert (reply.status, reply.headers["allow"]) == (405, "GET, HEAD")


def test_head_on_control_endpoints_that_answer_get(pieces_emulator: Emulator) -> None:
    get = call(pieces_emulator, "GET", "/__emulator__/state")
    head = call(pieces_emulator, "HEAD", "/__emulator__/state")
    assert (head.status, head.body, head.headers["content-type"]) == (200, b"", get.headers["content-type"])


# ----------------------------------------------------------------------------- path decoding
AWKWARD_IDS = ["a/b", "what?x=1", "hash#tag", "100%", "..", ".", "sp ace", "ünïcødé-✓", "a%2Fb", "+plus+"]


@pytest.mark.parametrize("awkward", AWKWARD_IDS)
def test_path_parameters_are_percent_decoded(pieces_emulator: Emulator, awkward: str) -> None:
    from urllib.parse import quote

    pieces_emulator.create_conversation({"type": "COPILOT"}, conversation_id=awkward)
    encoded = quote(awkward, safe="")
    raw = raw_exchange(
        pieces_emulator,
        f"POST /conversations/{encoded}/delete HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert raw.startswith(b"HTTP/1.1 204"), raw
    assert pieces_emulator.conversation_ids() == []
    assert pieces_emulator.requests[-1].path == f"/conversations/{encoded}/delete"


def test_asset_ids_are_percent_decoded_with_urllib3(pieces_emulator: Emulator) -> None:
    from urllib.parse import quote

    awkward = "ässet/with?odd#chars%"
    pieces_emulator.add_asset("Odd one", "x = 1\n", "python", asset_id=awkward)
    with urllib3.PoolManager() as pool:
        response = pool.request(
            "POST", pieces_emulator.url + "/conversations/create/from_asset/" + quote(awkward, safe="")
        )
    assert response.status == 200
    conversation = json.loads(response.data)["conversation"]["reference"]
    assert conversation["assets"]["iterable"][0]["id"] == awkward


def test_error_reason_shows_the_decoded_id(pieces_emulator: Emulator) -> None:
    reply = call(pieces_emulator, "POST", "/conversations/%C3%BC%2F%3F/delete")
    assert reply.status == 500
    assert "'ü/?'" in reply.text


def test_an_unencoded_slash_does_not_reach_the_handler(pieces_emulator: Emulator) -> None:
    pieces_emulator.create_conversation({"type": "COPILOT"}, conversation_id="a/b")
    assert call(pieces_emulator, "POST", "/conversations/a/b/delete").status == 404
    assert pieces_emulator.conversation_ids() == ["a/b"]


def test_invalid_utf8_in_a_path_parameter_is_500(pieces_emulator: Emulator) -> None:
    reply = call(pieces_emulator, "POST", "/conversations/%FF%FE/delete")
    assert reply.status == 500
    assert "UTF-8" in reply.text


# ----------------------------------------------------------------------------- control methods
def test_request_accounting(pieces_emulator: Emulator) -> None:
    call(pieces_emulator, "GET", "/conversations/identifiers")
    call(pieces_emulator, "GET", "/conversations?transferables=false")
    call(pieces_emulator, "POST", "/conversations/x%2Fy/delete")
    call(pieces_emulator, "GET", "/__emulator__/state")  # control endpoints are not counted
    assert [tuple(r) for r in pieces_emulator.requests] == [
        ("GET", "/conversations/identifiers", ""),
        ("GET", "/conversations", "transferables=false"),
        ("POST", "/conversations/x%2Fy/delete", ""),
    ]
    assert pieces_emulator.request_count() == 3
    assert pieces_emulator.request_count("GET") == 2
    assert pieces_emulator.request_count(path="/conversations") == 1
    assert pieces_emulator.request_count("post", "/conversations/x/y/delete") == 1
    assert pieces_emulator.request_count(path="/conversations*") == 3
    pieces_emulator.clear_requests()
    assert pieces_emulator.requests == []


def test_reset_restores_a_clean_store(pieces_emulator: Emulator) -> None:
    extra = pieces_emulator.add_asset("extra", "print(1)\n", "py")
    pieces_emulator.create_conversation(from_asset=extra)
    pieces_emulator.fail_next(503)
    pieces_emulator.reset()
    assert pieces_emulator.conversation_ids() == []
    assert extra not in pieces_emulator.asset_ids()
    assert DEMO_ASSET in pieces_emulator.asset_ids()
    assert pieces_emulator.pending_faults() == []
    assert call(pieces_emulator, "GET", "/conversations/identifiers").status == 200


def test_create_conversation_helper(pieces_emulator: Emulator) -> None:
    cid = pieces_emulator.create_conversation({"type": "COPILOT", "name": "seeded"})
    stored = pieces_emulator.conversation(cid)
    assert stored is not None and stored["name"] == "seeded"
    with pytest.raises(ValueError, match="already exists"):
        pieces_emulator.create_conversation(conversation_id=cid)
    with pytest.raises(ValueError, match="asset not found"):
        pieces_emulator.create_conversation(from_asset="missing")
    pieces_emulator.delete_conversation(cid)
    with pytest.raises(KeyError):
        pieces_emulator.delete_conversation(cid)


def test_assets_file_in_both_forms(tmp_path: Path) -> None:
    assets: list[dict[str, Any]] = [
        {"id": "simple-1", "name": "Hello", "text": "fn main() {}\n", "language": "rust"},
        {
            "id": "asset-shaped",
            "name": "From an Asset",
            "formats": {
                "iterable": [
                    {
                        "id": "fmt",
                        "classification": {"generic": "CODE", "specific": "go"},
                        "fragment": {"string": {"raw": "package main\n\nfunc main() {}\n"}},
                    }
                ]
            },
        },
    ]
    path = tmp_path / "assets.json"
    path.write_text(json.dumps(assets), encoding="utf-8")
    with running_emulator(assets=str(path), demo_assets=False) as emu:
        assert emu.asset_ids() == ["simple-1", "asset-shaped"]
        out = call(emu, "POST", "/conversations/create/from_asset/asset-shaped").json()
        summary = out["conversation"]["reference"]["messages"]["iterable"][0]["reference"]["fragment"]["string"]["raw"]
        assert "3 lines of Go" in summary and "package main" in summary
        out = call(emu, "POST", "/conversations/create/from_asset/simple-1").json()
        assert (
            "1 line of Rust"
            in out["conversation"]["reference"]["messages"]["iterable"][0]["reference"]["fragment"]["string"]["raw"]
        )


def test_seed_conversations_option() -> None:
    with running_emulator(seed_conversations=5) as emu:
        assert len(emu.conversation_ids()) == 5
        assert len(call(emu, "GET", "/conversations/identifiers").json()["iterable"]) == 5


def test_start_stop_is_idempotent_and_frees_the_port() -> None:
    emu = Emulator()
    emu.stop()  # never started: a no-op
    emu.start()
    assert emu.start() is emu
    port = emu.port
    assert call(emu, "GET", "/.well-known/health").status == 200
    started = time.monotonic()
    emu.stop()
    emu.stop()
    assert time.monotonic() - started < 2
    assert not emu.running
    with pytest.raises(RuntimeError):
        _ = emu.url
    with running_emulator(port=port) as again:  # the port is free again
        assert again.port == port


def test_a_busy_port_fails_loudly(pieces_emulator: Emulator) -> None:
    with pytest.raises(OSError):
        Emulator(port=pieces_emulator.port).start()


# ----------------------------------------------------------------------------- control endpoints
def test_control_endpoints(pieces_emulator: Emulator) -> None:
    emu = pieces_emulator
    added = post_json(emu, "/__emulator__/assets", {"name": "ctl", "text": "a\nb\n", "language": "txt"}).json()
    assert added["id"] in emu.asset_ids()

    assert (
        post_json(emu, "/__emulator__/faults/fail", {"status": 502, "count": 1, "path": "/conversations"}).status == 204
    )
    assert post_json(emu, "/__emulator__/faults/delay", {"seconds": 0.01, "count": 2}).status == 204
    assert post_json(emu, "/__emulator__/faults/break", {"mode": "html"}).status == 204
    kinds = [f["kind"] for f in call(emu, "GET", "/__emulator__/faults").json()["faults"]]
    assert kinds == ["delay", "fail", "break"]
    assert call(emu, "GET", "/conversations").status == 502
    assert call(emu, "GET", "/.well-known/health").headers["content-type"].startswith("text/html")
    assert call(emu, "GET", "/.well-known/health").text == "ok"

    post_json(emu, "/__emulator__/faults/fail", {"status": 503, "count": None})
    assert call(emu, "GET", "/conversations").status == 503
    assert call(emu, "DELETE", "/__emulator__/faults").status == 204
    assert call(emu, "GET", "/conversations").status == 200

    recorded = call(emu, "GET", "/__emulator__/requests").json()["requests"]
    assert recorded[0] == {"method": "GET", "path": "/conversations", "query": ""}
    assert call(emu, "DELETE", "/__emulator__/requests").status == 204
    assert call(emu, "GET", "/__emulator__/requests").json() == {"requests": []}

    state = call(emu, "GET", "/__emulator__/state").json()
    assert state["conversations"] == [] and state["websockets"] == 0

    emu.create_conversation()
    assert post_json(emu, "/__emulator__/reset", {}).status == 204
    assert emu.conversation_ids() == []
    assert post_json(emu, "/__emulator__/drop-websockets", {}).json() == {"dropped": 0}


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/__emulator__/faults/break", {"mode": "explode"}),
        ("/__emulator__/faults/break", {}),
        ("/__emulator__/faults/fail", {"status": 42}),
        ("/__emulator__/faults/delay", {"count": 1}),
        ("/__emulator__/faults/delay", {"seconds": 1, "count": 0}),
    ],
)
def test_control_endpoints_reject_bad_input(pieces_emulator: Emulator, path: str, payload: Any) -> None:
    reply = post_json(pieces_emulator, path, payload)
    assert reply.status == 400
    assert reply.json()["error"]
    assert pieces_emulator.pending_faults() == []


def test_unknown_control_endpoint_is_404(pieces_emulator: Emulator) -> None:
    assert call(pieces_emulator, "GET", "/__emulator__/nope").status == 404


# ----------------------------------------------------------------------------- CLI
def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the emulator printed nothing in time"
    return proc.stdout.readline()


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGTERM and select on a pipe")
def test_cli_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    assets = tmp_path / "a.json"
    assets.write_text(json.dumps([{"id": "cli-asset", "name": "n", "text": "t"}]), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pieces_os_client.emulator",
            "--port",
            "0",
            "--assets",
            str(assets),
            "--seed-conversations",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = _read_line(proc, 10)
        assert "http://127.0.0.1:" in line
        url = line.split()[line.split().index("on") + 1]
        with urllib3.PoolManager() as pool:
            assert pool.request("GET", url + "/.well-known/health").data == b"ok"
            ids = json.loads(pool.request("GET", url + "/conversations/identifiers").data)
            assert len(ids["iterable"]) == 2
            assert pool.request("POST", url + "/conversations/create/from_asset/cli-asset").status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_cli_reports_a_busy_port(pieces_emulator: Emulator) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pieces_os_client.emulator", "--port", str(pieces_emulator.port)],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert done.returncode == 1
    assert "cannot listen" in done.stderr


# ----------------------------------------------------------------------------- other clients
@pytest.mark.skipif(
    not os.environ.get("PIECES_OFFICIAL_SDK_PYTHON"),
    reason="set PIECES_OFFICIAL_SDK_PYTHON to a python that has the official pieces-os-client installed",
)
def test_official_sdk_runs_against_the_emulator(pieces_emulator: Emulator, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            os.environ["PIECES_OFFICIAL_SDK_PYTHON"],
            str(ROOT / "examples" / "official_sdk_against_emulator.py"),
            pieces_emulator.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # so our own pieces_os_client is not importable there
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "official SDK: all good" in done.stdout
    assert pieces_emulator.request_count("POST", "/conversations/create") == 2


# ----------------------------------------------------------------------------- packaging and the SDK
def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env)


def test_importing_the_sdk_does_not_load_aiohttp() -> None:
    done = _run_python(
        "import sys, pieces_os_client, pieces_os_client.testing\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp was imported'\n"
        "assert 'pieces_os_client.emulator' not in sys.modules\n"
    )
    assert done.returncode == 0, done.stderr


def test_missing_aiohttp_says_which_extra_to_install() -> None:
    done = _run_python(
        "import sys\n"
        "sys.modules['aiohttp'] = None\n"
        "import pieces_os_client.emulator\n"  # the package imports; its names need aiohttp
        "try:\n"
        "    from pieces_os_client.emulator import Emulator\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert 'pip install ".[emulator]"' in done.stdout and "clone" in done.stdout
    assert "pip install pieces_os_client" not in done.stdout and "pieces_os_client[" not in done.stdout


def test_our_sdk_round_trip_and_stream(pieces_emulator_session: Emulator) -> None:
    import pieces_os_client

    emu = pieces_emulator_session
    emu.reset()
    configuration = pieces_os_client.Configuration(host=emu.url)
    with pieces_os_client.ApiClient(configuration) as api_client:
        api = pieces_os_client.ConversationsApi(api_client)
        with api.conversations_stream_identifiers() as stream:
            first = next(iter(stream))
            assert first.iterable == []
            created = api.conversations_create_from_asset(DEMO_ASSET).conversation
            pushed = next(iter(stream))
            assert [item.conversation.id for item in pushed.iterable if item.conversation] == [created.id]
            snapshot = api.conversations_snapshot(transferables=False)
            assert [c.id for c in snapshot.iterable] == [created.id]
            api.conversations_delete_specific_conversation(created.id)
            gone = next(iter(stream))
            assert gone.iterable[0].deleted is True
        assert api.conversations_identifiers_snapshot().iterable == []
