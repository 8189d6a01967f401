"""Start `gmailscript sim` for the tests and hand its base URL to them."""

import os
import subprocess
import urllib.request
import json

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def binary():
    path = os.environ.get("GMAILSCRIPT_BIN") or os.path.join(ROOT, "target", "debug", "gmailscript")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build with `cargo build` or set GMAILSCRIPT_BIN")
    return path


class Sim:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [binary(), "sim", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            err = self.proc.stderr.read()
            raise RuntimeError(f"sim did not print its URL: {line!r} {err}")
        self.url = line

    def stats(self):
        with urllib.request.urlopen(self.url + "/_sim/stats") as r:
            return json.load(r)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sim():
    s = Sim("--messages", "600", "--seed", "7", "--quota", "off")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def faulty_sim():
    # Every call fails with 503 or 404 about half the time: parts fail inside batches.
    s = Sim("--messages", "200", "--seed", "7", "--quota", "off", "--faults", "503:0.3,404:0.2")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def html_sim():
    # Every call meets Google's front end answering 502 with its HTML page.
    s = Sim("--messages", "20", "--quota", "off", "--faults", "502:1")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def penalty_sim():
    # 50 units a second: the third get in a burst passes it, and the user is
    # then locked out for an hour.
    s = Sim("--messages", "20", "--seed", "7", "--per-second", "50", "--rate-penalty", "1h")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def domain_sim():
    # A domain of 1,200 users: admin@ and user1..user1199@, two suspended,
    # one without Gmail.
    s = Sim(
        "--domain", "example.com", "--domain-users", "1199", "--messages", "20", "--quota", "off",
        "--suspended", "user2@example.com,user5@example.com", "--no-gmail-users", "user7@example.com",
    )
    yield s
    s.stop()
