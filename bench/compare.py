"""gmailscript against google-api-python-client batches, in one run.

    bench/run.sh            # builds, sets up the virtualenv, runs this

Contenders: gmailscript (`bench/fetch.lua`, its defaults), and the baseline
(`bench/baseline.py`) with batches of 100 and of 50 as the tutorials write
it, and with batches of 50 plus reruns of the failed ids until none are left
("python 50 rerun", the careful version). Each contender gets a fresh
simulator with the same seeded mailbox, quota profile and faults.

1. Whole runs (quota off, and the 2026 quota at speed 30; without faults and
   with the fault mix 500:0.02,503:0.01,429:0.03,reset:0.005,truncate:0.002;
   metadata and raw): wall time, messages lost (listed but never
   delivered), duplicates, calls wasted on rate errors, CPU seconds and peak
   RSS of the contender's process.
2. Quota utilisation: a mailbox larger than the quota lets through in K
   windows; the simulator's count of units spent is read K windows after the
   contender started (then it is stopped). A sliding window allows at most
   K × limit units in K windows, so utilisation = units ÷ (K × limit). The
   contender's start-up and listing count against it.
3. Ratios gmailscript / baseline, and how gmailscript's time and memory grow
   with the mailbox (1k, 10k, 100k messages, quota off).
4. The same whole runs and utilisation under the simulator's `--realism
   gmail` (quota lockouts of 15 minutes of quota clock, 30 s at speed 30; a
   per-second limit; refused calls charged; HTML 502/504; 40 ms ± 20 ms per
   call and 150 ms per batch). A contender that is not done after
   BENCH_TIMEOUT seconds (default 120) is stopped; what it had not
   delivered by then counts as lost.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GMAILSCRIPT_BIN", os.path.join(ROOT, "target", "release", "gmailscript"))
PY = sys.executable
FAULTS = "500:0.02,503:0.01,429:0.03,reset:0.005,truncate:0.002"
SPEED = 30  # quota window of 2 s
WINDOW = 60 / SPEED
PER_USER = 6000  # 2026 profile
GET_COST = 20
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))  # under quota
# Without quota a run of 2,000 takes ~1.5 s and one honoured retry delay
# (Retry-After: 1 s, backoff from 1 s) is most of it; 10,000 shows the pace.
MESSAGES_OFF = int(os.environ.get("BENCH_MESSAGES_OFF", "10000"))
K = int(os.environ.get("BENCH_WINDOWS", "10"))  # windows of the utilisation measure
OUT = os.environ.get("BENCH_DIR", "/tmp/gmailscript-bench")
LATENCY = ["--latency", "20ms", "--jitter", "10ms"]
NAMES = ["gmailscript", "python 100", "python 50", "python 50 rerun"]
REALISM = "realism"  # in place of a fault mix: the simulator's --realism gmail
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "120"))


def label(faults):
    return {"": "clean", REALISM: "realism"}.get(faults, "faults")


class Sim:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [BIN, "sim", "--port", "0", "--seed", "11", *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.url = self.proc.stdout.readline().strip()

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": "Bearer sim-token"})
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def stats(self):
        return self.get("/_sim/stats")

    def listed(self):
        ids, token = set(), ""
        while True:
            page = self.get("/gmail/v1/users/me/messages?maxResults=500" + token)
            ids |= {m["id"] for m in page.get("messages", [])}
            if "nextPageToken" not in page:
                return ids
            token = "&pageToken=" + page["nextPageToken"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def command(name, url, fmt, ids_file, quota):
    if name == "gmailscript":
        return [BIN, "run", os.path.join(ROOT, "bench", "fetch.lua"), "--endpoint", url,
                "--quota", quota, "--quota-window", f"{WINDOW}s", "--quiet", "--", fmt, ids_file]
    size = name.split()[1]
    return [PY, os.path.join(ROOT, "bench", "baseline.py"), url, fmt, size, ids_file,
            *(["rerun"] if name.endswith("rerun") else [])]


def measure(cmd, timeout=None):
    """Run cmd; wall seconds, CPU seconds and peak RSS (MB) of that process.
    Past `timeout` seconds it is killed (exit code "timeout")."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG if timeout else 0)
        if pid:
            break
        if time.monotonic() - start > timeout:
            p.kill()
            killed = True
            timeout = None
            continue
        time.sleep(0.05)
    wall = time.monotonic() - start
    code = "timeout" if killed else os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code


def sim_args(messages, quota, faults):
    args = ["--messages", str(messages), "--quota", quota, "--speed", str(SPEED)]
    if faults == REALISM:
        return args + ["--realism", "gmail"]
    return args + LATENCY + (["--faults", faults] if faults else [])


def whole_run(name, fmt, faults, quota):
    n = MESSAGES_OFF if quota == "off" else MESSAGES
    clean = Sim(*sim_args(n, quota, ""))
    listed = clean.listed()
    clean.stop()
    sim = Sim(*sim_args(n, quota, faults))
    ids_file = os.path.join(OUT, f"{name.replace(' ', '_')}-{fmt}-{quota}-{label(faults)}.ids")
    if os.path.exists(ids_file):
        os.remove(ids_file)
    wall, cpu, rss, code = measure(command(name, sim.url, fmt, ids_file, quota),
                                   TIMEOUT if faults == REALISM else None)
    st = sim.stats()
    sim.stop()
    try:
        delivered = [l.strip() for l in open(ids_file) if l.strip()]
    except FileNotFoundError:
        delivered = []
    return {
        "tool": name, "format": fmt, "quota": quota, "faults": label(faults), "exit": code,
        "penalties": st.get("penalties", 0),
        "wall_s": wall, "cpu_s": cpu, "rss_mb": rss,
        "rate_errors": st["rate_errors"], "calls": st["calls_total"],
        "wasted_pct": 100.0 * st["rate_errors"] / max(1, st["calls_total"]),
        "listed": len(listed), "delivered": len(delivered),
        "duplicates": len(delivered) - len(set(delivered)),
        "lost": len(listed - set(delivered)),
        "cpu_per_msg_ms": 1000.0 * cpu / max(1, len(set(delivered))),
    }


def utilisation(name, fmt, faults):
    """Units the simulator counted in the contender's first K windows."""
    n = PER_USER // GET_COST * (K + 2)  # more than K windows let through
    sim = Sim(*sim_args(n, "2026", faults))
    ids_file = os.path.join(OUT, "util.ids")
    start = time.monotonic()
    p = subprocess.Popen(command(name, sim.url, fmt, ids_file, "2026"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(max(0.0, start + K * WINDOW - 0.02 - time.monotonic()))
    st = sim.stats()
    p.send_signal(signal.SIGKILL)
    p.wait()
    sim.stop()
    return {"tool": name, "format": fmt, "faults": label(faults),
            "penalties": st.get("penalties", 0), "units": st["units_spent"], "utilisation": st["units_spent"] / (K * PER_USER),
            "wasted_pct": 100.0 * st["rate_errors"] / max(1, st["calls_total"]),
            "finished_early": p.returncode == 0}


def scaling():
    rows = []
    for n in (1000, 10000, 100000):
        sim = Sim("--messages", str(n), "--quota", "off", "--concurrency", "1000")
        ids_file = os.path.join(OUT, f"scale-{n}.ids")
        wall, cpu, rss, code = measure(command("gmailscript", sim.url, "metadata", ids_file, "off"))
        sim.stop()
        got = sum(1 for l in open(ids_file) if l.strip())
        rows.append((n, got, wall, cpu, rss, code))
    return rows


def best_baseline(rows):
    """The baseline's best configuration: the fastest that lost nothing."""
    base = [r for r in rows if r["tool"] != "gmailscript"]
    return min([r for r in base if r["lost"] == 0] or base, key=lambda r: r["wall_s"])


def main():
    os.makedirs(OUT, exist_ok=True)
    os.environ["GMAILSCRIPT_TOKEN"] = "sim-token"
    results = []
    scenarios = [("off", "", "metadata"), ("off", FAULTS, "metadata"),
                 ("2026", "", "metadata"), ("2026", "", "raw"),
                 ("2026", FAULTS, "metadata"), ("2026", FAULTS, "raw"),
                 ("2026", REALISM, "metadata"), ("2026", REALISM, "raw")]
    print(f"Whole runs: latency 20 ms ± 10 ms; {MESSAGES_OFF} messages with quota off, {MESSAGES} under "
          f"the 2026 quota at speed {SPEED} (window {WINDOW:.0f} s).")
    for quota, faults, fmt in scenarios:
        rows = []
        for name in NAMES:
            r = whole_run(name, fmt, faults, quota)
            rows.append(r)
            print(f"quota {quota:4} {label(faults):7} {fmt:8} {name:16} wall {r['wall_s']:6.1f} s  "
                  f"lost {r['lost']:4d}/{r['listed']}  dup {r['duplicates']}  rate-err {r['wasted_pct']:5.2f}%  "
                  f"penalties {r['penalties']}  "
                  f"cpu {r['cpu_s']:5.2f} s  rss {r['rss_mb']:6.1f} MB  exit {r['exit']}", flush=True)
        g, best = rows[0], best_baseline(rows)
        print(f"  ratio gmailscript/{best['tool']}: wall {g['wall_s'] / best['wall_s']:.2f}, "
              f"CPU per message {g['cpu_per_msg_ms'] / best['cpu_per_msg_ms']:.3f} "
              f"(baseline/gmailscript = {best['cpu_per_msg_ms'] / max(1e-9, g['cpu_per_msg_ms']):.1f}x), "
              f"lost {g['lost']} vs {best['lost']}, rate-limited calls {g['wasted_pct']:.2f}% vs {best['wasted_pct']:.2f}%",
              flush=True)
        results += rows
    print(f"\nQuota utilisation: units spent in the first {K} windows ({K * WINDOW:.0f} s) "
          f"÷ {K} × {PER_USER}, mailbox larger than that.")
    util = []
    for faults in ("", FAULTS, REALISM):
        for fmt in ("metadata", "raw"):
            pair = []
            for name in ("gmailscript", "python 50 rerun"):
                u = utilisation(name, fmt, faults)
                pair.append(u)
                print(f"{label(faults):7} {fmt:8} {name:16} utilisation {100 * u['utilisation']:5.1f}% "
                      f"({u['units']} units)  rate-err {u['wasted_pct']:5.2f}%  penalties {u['penalties']}"
                      f"{'  (finished early)' if u['finished_early'] else ''}", flush=True)
            print(f"  ratio gmailscript/python 50 rerun: {pair[0]['utilisation'] / max(1e-9, pair[1]['utilisation']):.2f}")
            util += pair
    print()
    for n, got, wall, cpu, rss, code in scaling():
        print(f"scaling: {n:6d} messages (quota off): {got} delivered, {wall:6.2f} s wall, {cpu:5.2f} s CPU, "
              f"peak RSS {rss:6.1f} MB, exit {code}", flush=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"runs": results, "utilisation": util}, f, indent=2)


if __name__ == "__main__":
    main()
