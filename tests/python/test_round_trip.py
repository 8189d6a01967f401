"""Backup then restore into another mailbox with the gmailscript binary,
then Google's own client checks the destination: every message once, the
same bytes, the same label names."""

import base64
import json
import os
import subprocess
import urllib.request
from collections import Counter

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from conftest import ROOT, Sim, binary


def service(url, token):
    return build(
        "gmail",
        "v1",
        credentials=Credentials(token=token),
        client_options={"api_endpoint": url + "/"},
        static_discovery=True,
        cache_discovery=False,
    )


def run_script(name, url, token, *args):
    env = dict(os.environ, GMAILSCRIPT_TOKEN=token)
    env.pop("RUST_LOG", None)
    p = subprocess.run(
        [binary(), "run", os.path.join(ROOT, "scripts", name), "--endpoint", url, "--quota", "off", "--quiet", "--", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, f"{name}: {p.stdout}\n{p.stderr}"
    return p.stdout


def all_ids(svc, **kw):
    ids, req = [], svc.users().messages().list(userId="me", maxResults=500, **kw)
    while req is not None:
        page = req.execute()
        ids += [m["id"] for m in page.get("messages", [])]
        req = svc.users().messages().list_next(req, page)
    return ids


def contents(svc, ids):
    """(raw bytes, sorted label names) of each message, as a multiset."""
    names = {l["id"]: l["name"] for l in svc.users().labels().list(userId="me").execute()["labels"]}
    out = Counter()
    for i in ids:
        m = svc.users().messages().get(userId="me", id=i, format="raw").execute()
        raw = base64.urlsafe_b64decode(m["raw"])
        out[(raw, tuple(sorted(names[l] for l in m.get("labelIds", []))))] += 1
    return out


def test_backup_then_restore_is_checked_with_googles_client(tmp_path):
    sim = Sim("--messages", "60", "--seed", "11", "--quota", "off")
    try:
        dest = tmp_path / "me"
        run_script("backup.lua", sim.url, "sim-token", str(dest))
        req = urllib.request.Request(sim.url + "/_sim/tokens?user=bob@example.com", method="POST")
        with urllib.request.urlopen(req) as r:
            bob = json.load(r)["access_token"]
        src, dst = service(sim.url, "sim-token"), service(sim.url, bob)
        before = set(all_ids(dst, includeSpamTrash=True))

        said = run_script("restore.lua", sim.url, bob, str(dest))
        source_ids = all_ids(src)
        assert f"imported {len(source_ids)}," in said, said

        new = [i for i in all_ids(dst, includeSpamTrash=True) if i not in before]
        assert len(new) == len(source_ids), "every message once"
        want, got = contents(src, source_ids), contents(dst, new)
        assert got == want, "the same bytes and the same label names"
        user_labels = {l["name"] for l in src.users().labels().list(userId="me").execute()["labels"] if l["type"] == "user"}
        assert any(set(labels) & user_labels for _, labels in want), \
            "the source has user labels, so names (not only system ids) are compared"

        # Again: nothing new.
        said = run_script("restore.lua", sim.url, bob, str(dest))
        assert f"imported 0, {len(source_ids)} already there" in said, said
        assert len(all_ids(dst, includeSpamTrash=True)) == len(before) + len(new)
    finally:
        sim.stop()
