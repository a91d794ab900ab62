"""``doctor`` (and discovery from the command line) against servers that answer badly on
purpose: each ends within the bound docs/cli.md states, with exit status 1 and a cause on one
line. The command runs in a subprocess, as users run it; the servers are raw sockets on
127.0.0.1 started here (see testkit.hostile)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testkit.cli import Run, run_cli
from testkit.hostile import HOSTILE
from testkit.ws import HeadServer

from pieces_os_client.cli.doctor import worst_case
from pieces_os_client.discovery import ENV_VAR

#: --timeout: the trickling and flooding servers send their head at once, so it comes well
#: within this on a loaded machine too, while no trickle can finish in it
TIMEOUT = 2.0
#: room for the scan's probe of each of the four servers, one TIMEOUT each, with time to spare
DISCOVERY_TIMEOUT = 10.0
#: a generous allowance for the interpreter's start-up and imports on a busy machine; it only
#: keeps a hung command from passing
START_UP = 30.0
LONG_HOST = "http://" + "a" * 300 + ":39300"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _doctor(home: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    bound = worst_case(TIMEOUT, DISCOVERY_TIMEOUT) + START_UP
    return run_cli(home, "doctor", "--json", "--timeout", str(TIMEOUT), "--discovery-timeout",
                   str(DISCOVERY_TIMEOUT), *args, env=env, timeout=bound)


def _causes(run: Run) -> list[str]:
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    causes = [problem["cause"] for problem in json.loads(run.stdout)["problems"]]
    assert causes and all("\n" not in cause for cause in causes), causes
    return causes


def test_doctor_ends_within_its_bound_against_trickling_silent_and_flooding_servers(home: Path) -> None:
    servers = {kind: HeadServer(HOSTILE[kind]) for kind in ("trickling", "trickling_head", "silent", "flooding")}
    with servers["trickling"], servers["trickling_head"], servers["silent"], servers["flooding"]:
        named = {kind: _doctor(home, env={ENV_VAR: server.url}) for kind, server in servers.items()}
        ports = ",".join(str(server.port) for server in servers.values())
        scanned = _doctor(home, "--ports", ports)
    for kind, run in {**named, "scan": scanned}.items():
        print(f"doctor, {kind}: {run.seconds:.2f} s (bound {worst_case(TIMEOUT, DISCOVERY_TIMEOUT):g} s + start-up)")
    url = {kind: server.url for kind, server in servers.items()}
    (cause,) = _causes(named["trickling"])
    assert cause.startswith(f"{ENV_VAR} is {url['trickling']}, but the server there is not Pieces OS: GET "
                            "/.well-known/health answered 200 OK, but the body did not finish within 2 s (")
    (cause,) = _causes(named["trickling_head"])
    assert cause.startswith(f"{ENV_VAR} is {url['trickling_head']}, but the server accepts connections yet does not "
                            "answer in time: the status line and headers did not finish within 2 s (")
    (cause,) = _causes(named["silent"])
    assert cause == (f"{ENV_VAR} is {url['silent']}, but the server accepts connections yet does not answer in "
                     "time: no answer within 2 s")
    (cause,) = _causes(named["flooding"])
    assert cause.startswith(f"{ENV_VAR} is {url['flooding']}, but the server there is not Pieces OS: GET "
                            "/.well-known/health answered 200 OK with b'xxxx")
    causes = _causes(scanned)
    assert len(causes) == 4 and all(cause.startswith("port ") for cause in causes)


def test_doctor_search_ends_at_discovery_timeout_and_says_what_it_left_untried(home: Path) -> None:
    servers = [HeadServer(HOSTILE["silent"]) for _ in range(4)]
    with servers[0], servers[1], servers[2], servers[3]:
        ports = [server.port for server in servers]
        # a probe may take 5 s, the search 1.5 s: the first probe is cut to the search's end, so
        # it is the only one tried however slow the machine (with 1 s probes a second one would
        # get whatever a busy machine left of the last half second)
        run = run_cli(home, "doctor", "--json", "--timeout", "5", "--discovery-timeout", "1.5", "--ports",
                      ",".join(map(str, ports)), timeout=worst_case(5, 1.5) + START_UP)
    causes = _causes(run)
    report = json.loads(run.stdout)
    outcomes = [step["outcome"] for step in report["discovery"]["steps"] if step["source"] == "scan"]
    assert outcomes == ["no_answer"] + ["out_of_time"] * 3, outcomes
    untried = ", ".join(map(str, ports[1:]))
    assert causes[-1] == f"the search stopped after 1.5 s, before trying ports {untried}"
    assert report["problems"][-1]["fix"].endswith("or give the search more time with --discovery-timeout")


def test_a_pieces_os_url_that_is_no_usable_url_is_named_in_one_line(home: Path) -> None:
    listed = run_cli(home, "conversations", "list", env={ENV_VAR: LONG_HOST})
    assert listed.returncode == 1 and listed.stdout == ""
    assert listed.stderr.startswith(f"pieces-os-client: error: The environment variable {ENV_VAR} 'http://aaaa")
    assert "has a host name of 300 characters; DNS allows at most 253" in listed.stderr
    assert len(listed.stderr.splitlines()) == 1 and "codec" not in listed.stderr

    (cause,) = _causes(_doctor(home, env={ENV_VAR: LONG_HOST}))
    assert cause.startswith(f"{ENV_VAR} 'http://aaaa") and "has a host name of 300 characters" in cause

    given = run_cli(home, "conversations", "list", "--host", LONG_HOST)
    assert given.returncode == 2 and "argument --host: 'http://aaaa" in given.stderr
    assert "has a host name of 300 characters" in given.stderr and "codec" not in given.stderr
