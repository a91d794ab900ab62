"""A client used on both sides of ``os.fork()`` never mixes up the two processes' requests.

A fresh interpreter (single-threaded, so forking it is safe) warms a client up - a pooled
keep-alive connection is open - and forks. Parent and child then make calls at the same time,
each with its own data: every conversation either creates carries its own name prefix, and
each checks every reply belongs to it. The child reports through a pipe and its exit code.
Before the fix both processes wrote to the inherited socket and read each other's replies.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.emulator import Emulator

SCENARIO = r"""
import json, os, sys, time
from pieces_os_client import ApiClient, Configuration, ConversationsApi

CYCLES, ROUNDS = 6, 8


def work(api, who, rounds):
    problems, live, done = [], [], 0
    give_up = time.monotonic() + 20
    for index in range(rounds):
        if time.monotonic() > give_up:
            problems.append("out of time")
            break
        name = f"{who}-{index}"
        try:
            created = api.conversations_create_specific_conversation(seeded_conversation={"name": name})
            if created.name != name:
                problems.append(f"asked to create {name!r}, got {created.name!r}")
            live.append(created.id)
            ids = {item.id for item in api.conversations_identifiers_snapshot().iterable}
            missing = [i for i in live if i not in ids]
            if missing:
                problems.append(f"identifiers lack {len(missing)} of our conversations")
            if index % 3 == 0:
                gone = live.pop(0)
                if api.conversations_delete_specific_conversation(gone) is not None:
                    problems.append("delete answered with a body")
            done += 1
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}"[:300])
    return {"who": who, "done": done, "problems": problems[:5], "problem_count": len(problems), "live": live}


def read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def forks_against(url, ca_file, last):
    config = Configuration(host=url, ssl_ca_cert=ca_file, max_retries=0, connect_timeout=5, read_timeout=5)
    api = ConversationsApi(ApiClient(config))
    pool = lambda: api.api_client.rest_client.pool_manager.connection_from_url(url)
    # first use builds the models, before any fork; a pooled keep-alive connection is now open
    api.conversations_delete_specific_conversation(
        api.conversations_create_specific_conversation(seeded_conversation={"name": "warm-up"}).id)
    api.conversations_identifiers_snapshot()
    reports = []
    for cycle in range(CYCLES):
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            os.close(go_w)
            os.read(go_r, 1)  # start together with the parent, on the connection inherited from it
            report = work(api, f"child{cycle}", ROUNDS)
            report["connections"] = pool().num_connections
            os.write(report_w, json.dumps(report).encode())
            os.close(report_w)
            code = 1 if report["problem_count"] else 0
            if last and cycle == CYCLES - 1:
                sys.exit(code)  # a normal exit once: the interpreter's own cleanup runs too
            os._exit(code)
        os.close(report_w)
        os.close(go_r)
        os.write(go_w, b"!")
        reports.append(work(api, f"parent{cycle}", ROUNDS))
        child = json.loads(read_all(report_r) or b"{}")
        child["exit"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        reports.append(child)
        for fd in (report_r, go_w):
            os.close(fd)
    return {"url": url, "reports": reports, "parent_connections": pool().num_connections}


targets = list(zip(sys.argv[1::2], sys.argv[2::2]))
print(json.dumps([forks_against(url, ca or None, i == len(targets) - 1) for i, (url, ca) in enumerate(targets)]))
"""


@pytest.fixture(scope="module")
def tls_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("fork-tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, ca_file


def test_parent_and_child_each_get_their_own_replies(tls_setup: tuple[ssl.SSLContext, Path]) -> None:
    context, ca_file = tls_setup
    with Emulator() as plain, Emulator(ssl_context=context) as tls:
        # one interpreter for both, so the models are built once
        result = subprocess.run([sys.executable, "-c", SCENARIO, plain.url, "", tls.url, str(ca_file)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        runs = json.loads(result.stdout)
        for emulator, run in zip((plain, tls), runs, strict=True):
            sides = run["reports"]
            assert len(sides) == 12
            for side in sides:
                assert side.get("problem_count") == 0, (run["url"], side)
                assert side["done"] == 8
            children = [side for side in sides if side["who"].startswith("child")]
            assert all(child["exit"] == 0 and child["connections"] == 1 for child in children)
            # the parent kept its one connection through every fork and every child's exit: no
            # child closed it, and each child opened a connection of its own
            assert run["parent_connections"] == 1, run["url"]
            # the server holds exactly what each side left alive
            assert sorted(emulator.conversation_ids()) == sorted(i for side in sides for i in side["live"])


def test_a_fork_the_hooks_missed_is_noticed_on_the_next_request(emu: Emulator) -> None:
    # A fork done below Python (a C library calling fork()) skips os.register_at_fork hooks;
    # the process-id check on the request path catches it. Pretend the process id changed.
    with ApiClient(Configuration(host=emu.url, max_retries=0)) as client:
        api = ConversationsApi(client)
        api.conversations_identifiers_snapshot()
        inherited = client.rest_client.pool_manager
        inherited_pool = inherited.connection_from_url(emu.url)
        client.rest_client._pid = -1
        assert api.conversations_identifiers_snapshot().iterable == []
        fresh = client.rest_client.pool_manager
        assert fresh is not inherited and fresh.connection_from_url(emu.url).num_connections == 1
        # the inherited pool was left as it was: not cleared, its connection not taken or closed
        assert inherited_pool.num_connections == 1 and inherited_pool.pool is not None
        assert inherited_pool.pool.qsize() == inherited_pool.pool.maxsize
        assert sum(1 for conn in inherited_pool.pool.queue if conn is not None and not conn.is_closed) == 1


# ---------------------------------------------------------------- worker pools
_POOL_SCRIPT = r"""
import json, multiprocessing, sys
from pieces_os_client import ApiClient, Configuration, ConversationsApi, SeededConversation

api = ConversationsApi(ApiClient(Configuration(host=sys.argv[1])))

def create(name):
    # runs in a worker: the client came from the parent (fork) or was rebuilt (spawn: a new module)
    return api.conversations_create_specific_conversation(seeded_conversation=SeededConversation(name=name))

if __name__ == "__main__":
    api.conversations_identifiers_snapshot()  # the parent holds a pooled connection first
    results = {}
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            made = pool.map(create, [f"{method}-{i}" for i in range(6)])
        # the models come back to the parent pickled, whole
        results[method] = [[c.name, c.id, c.model_extra] for c in made]
    ids = [ref.id for ref in api.conversations_identifiers_snapshot().iterable]
    print(json.dumps({"results": results, "server": sorted(ids)}))
"""


def test_worker_pools_share_a_client_and_return_whole_models(emu: Emulator, tmp_path: Path) -> None:
    script = tmp_path / "pool_script.py"
    script.write_text(_POOL_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), emu.url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for method in ("fork", "spawn"):
        made = out["results"][method]
        assert [name for name, _, _ in made] == [f"{method}-{i}" for i in range(6)]
        assert all(extra == {} for _, _, extra in made)
    every_id = sorted(cid for method in ("fork", "spawn") for _, cid, _ in out["results"][method])
    assert every_id == out["server"] == sorted(emu.conversation_ids())
