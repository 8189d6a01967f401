"""gmailscript against google-api-python-client batches, in one run.

    bench/run.sh            # builds, sets up the virtualenv, runs this

For each fault scenario (none; 500:0.02,503:0.01,429:0.03,reset:0.005,
truncate:0.002) and format (metadata, raw), a fresh simulator with the same
seeded mailbox, quota profile and faults serves each contender in turn:
gmailscript (`bench/fetch.lua`), and the baseline (`bench/baseline.py`)
with batches of 100 and of 50. Figures per run: wall time, quota
utilisation (units the simulator counted ÷ units allowed over the run),
calls wasted on rate errors, messages lost (listed but never delivered),
CPU seconds and peak RSS of the contender's process. Then ratios
gmailscript / baseline, and how gmailscript's time and memory grow with the
mailbox (1k, 10k, 100k messages, quota off).

"Allowed" over a run of T seconds with a sliding window W is
limit × (T / W + 1): a full window at the start, then the rate.
"""

import json
import os
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
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
OUT = os.environ.get("BENCH_DIR", "/tmp/gmailscript-bench")
QUOTA = "2026"  # the profile the contenders run under; main() also runs "off"


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


def measure(cmd, env=None):
    """Run cmd; wall seconds, CPU seconds and peak RSS (MB) of that process."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def contenders(fmt, ids_file, url):
    yield "gmailscript", [BIN, "run", os.path.join(ROOT, "bench", "fetch.lua"), "--endpoint", url,
                          "--quota", QUOTA, "--quota-window", f"{WINDOW}s", "--quiet", "--", fmt, ids_file]
    for size in (100, 50):
        yield f"python batch {size}", [PY, os.path.join(ROOT, "bench", "baseline.py"), url, fmt, str(size), ids_file]


def run_one(name, cmd_for, fmt, faults, quota="2026"):
    args = ["--messages", str(MESSAGES), "--quota", quota, "--speed", str(SPEED),
            "--latency", "20ms", "--jitter", "10ms"]
    if faults:
        args += ["--faults", faults]
    clean = Sim(*[a for a in args if a not in ("--faults", faults)])
    listed = clean.listed()
    clean.stop()
    sim = Sim(*args)
    time.sleep(0.1)
    ids_file = os.path.join(OUT, f"{name.replace(' ', '_')}-{fmt}-{'faults' if faults else 'clean'}.ids")
    wall, cpu, rss, code = measure(cmd_for(sim.url, ids_file))
    st = sim.stats()
    sim.stop()
    try:
        delivered = [l.strip() for l in open(ids_file) if l.strip()]
    except FileNotFoundError:
        delivered = []
    allowed = PER_USER * (wall / WINDOW + 1)
    gets = sum(v for k, v in st["calls"].get("messages.get", {}).items())
    return {
        "tool": name, "format": fmt, "faults": bool(faults), "exit": code,
        "wall_s": wall, "cpu_s": cpu, "rss_mb": rss,
        "utilisation": st["units_spent"] / allowed,
        "rate_errors": st["rate_errors"], "calls": st["calls_total"],
        "wasted_pct": 100.0 * st["rate_errors"] / max(1, st["calls_total"]),
        "listed": len(listed), "delivered": len(delivered),
        "duplicates": len(delivered) - len(set(delivered)),
        "lost": len(listed - set(delivered)),
        "cpu_per_msg_ms": 1000.0 * cpu / max(1, len(set(delivered))),
        "gets": gets,
    }


def scaling():
    rows = []
    for n in (1000, 10000, 100000):
        sim = Sim("--messages", str(n), "--quota", "off", "--concurrency", "1000")
        ids_file = os.path.join(OUT, f"scale-{n}.ids")
        wall, cpu, rss, code = measure([BIN, "run", os.path.join(ROOT, "bench", "fetch.lua"), "--endpoint", sim.url,
                                        "--quota", "off", "--quiet", "--", "metadata", ids_file],
                                       env={"GMAILSCRIPT_TOKEN": "sim-token"})
        sim.stop()
        got = sum(1 for l in open(ids_file) if l.strip())
        rows.append((n, got, wall, cpu, rss, code))
    return rows


def main():
    global QUOTA
    os.makedirs(OUT, exist_ok=True)
    os.environ["GMAILSCRIPT_TOKEN"] = "sim-token"
    # Quota off first: with no quota to exhaust, the baseline's batches of
    # 50 lose nothing when there are no faults, so wall times compare.
    QUOTA = "off"
    print("quota off (latency 20 ms ± 10 ms):")
    for faults in ("", FAULTS):
        for fmt in ("metadata",):
            rows = {}
            for name, _ in contenders(fmt, "x", "u"):
                def cmd_for(url, ids_file, name=name, fmt=fmt):
                    return dict(contenders(fmt, ids_file, url))[name]
                r = run_one(name, cmd_for, fmt, faults, quota="off")
                rows[name] = r
                print(f"{'faults' if faults else 'clean ':6} {fmt:8} {name:16} wall {r['wall_s']:6.1f} s  "
                      f"lost {r['lost']:4d}/{r['listed']}  rate-err {r['wasted_pct']:5.2f}%  cpu {r['cpu_s']:5.2f} s", flush=True)
            g = rows["gmailscript"]
            base = [rows["python batch 100"], rows["python batch 50"]]
            best = min([r for r in base if r["lost"] == 0] or base, key=lambda r: r["wall_s"])
            print(f"ratio quota-off {'faults' if faults else 'clean'}: wall {g['wall_s']/best['wall_s']:.2f} vs {best['tool']} "
                  f"(lost {g['lost']} vs {best['lost']})")
    QUOTA = "2026"
    print("\nquota 2026 at speed 30 (latency 20 ms ± 10 ms):")
    results = []
    for faults in ("", FAULTS):
        for fmt in ("metadata", "raw"):
            for name, _ in contenders(fmt, "x", "u"):
                def cmd_for(url, ids_file, name=name, fmt=fmt):
                    return dict(contenders(fmt, ids_file, url))[name]
                r = run_one(name, cmd_for, fmt, faults)
                results.append(r)
                print(f"{'faults' if faults else 'clean ':6} {fmt:8} {name:16} wall {r['wall_s']:6.1f} s  "
                      f"util {100*r['utilisation']:5.1f}%  rate-err {r['wasted_pct']:5.2f}%  "
                      f"lost {r['lost']:4d}/{r['listed']}  dup {r['duplicates']}  cpu {r['cpu_s']:5.2f} s  "
                      f"rss {r['rss_mb']:6.1f} MB  exit {r['exit']}", flush=True)
    print()
    for faults in (False, True):
        for fmt in ("metadata", "raw"):
            rows = {r["tool"]: r for r in results if r["faults"] == faults and r["format"] == fmt}
            g = rows["gmailscript"]
            # The baseline's best configuration: the fastest that lost
            # nothing, else the fastest.
            base = [rows["python batch 100"], rows["python batch 50"]]
            lossless = [r for r in base if r["lost"] == 0]
            best = min(lossless or base, key=lambda r: r["wall_s"])
            print(f"ratios {'faults' if faults else 'clean'} {fmt}: wall {g['wall_s']/best['wall_s']:.2f} "
                  f"(vs best baseline, {best['tool']}); CPU per message {g['cpu_per_msg_ms']/best['cpu_per_msg_ms']:.3f} "
                  f"(baseline/gmailscript = {best['cpu_per_msg_ms']/max(1e-9, g['cpu_per_msg_ms']):.1f}x); "
                  f"lost {g['lost']} vs {best['lost']}; utilisation {100*g['utilisation']:.1f}% vs {100*best['utilisation']:.1f}%")
    print()
    for n, got, wall, cpu, rss, code in scaling():
        print(f"scaling: {n:6d} messages (quota off): {got} delivered, {wall:6.2f} s wall, {cpu:5.2f} s CPU, "
              f"peak RSS {rss:6.1f} MB, exit {code}")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
