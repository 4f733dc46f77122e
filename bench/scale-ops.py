#!/usr/bin/env python3
"""What an operator waits for on a large data set (bench/scale.sh makes one): the time from
`portcullis serve` to ready, its resident memory then and after walking the lists, and how long a
management list's page takes at any depth (cursor pagination: the 1st page, the 10th, the 100th...
of the connections of the app with the most, of the audit log by app (the busiest and the
quietest), by user (a busy one and another) and by time, of the users).

  bench/scale-ops.py DATA_DIR [--pages N] [--rotate]     # DATA_DIR holds portcullis.db and master.key

With --rotate it then rotates the data key (POST /v1/mgmt/keys/rotate) and times the background
re-encryption of every sealed row, while timing a management read every 50 ms alongside it (the
same database the token path reads).

Needs a release build of portcullis (target/release/portcullis)."""
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

BIN = os.environ.get("PORTCULLIS_BIN", "target/release/portcullis")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    data = sys.argv[1]
    pages = int(sys.argv[sys.argv.index("--pages") + 1]) if "--pages" in sys.argv else 200
    # The data set's admin key (scale-data writes it there); a fresh directory gets a new one.
    key_file = os.path.join(data, "bootstrap-admin-key")
    key = open(key_file).read().strip() if os.path.exists(key_file) else "bench-ops-" + os.urandom(12).hex()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PORTCULLIS_BOOTSTRAP_ADMIN_KEY=key,
               PORTCULLIS_RATE_LIMIT_PER_ADDRESS="off", PORTCULLIS_RATE_LIMIT_PER_SUBJECT="off")
    started = time.monotonic()
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                sys.exit(f"portcullis serve exited: {proc.stderr.read().decode()}")
            if time.monotonic() - started > 120:
                sys.exit("not ready after 120 s")
            time.sleep(0.005)
        ready = time.monotonic() - started
        print(f"start-up to ready: {ready * 1000:.0f} ms; resident memory then: {rss_mib(proc.pid):.0f} MiB")

        def get(path):
            req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {key}"})
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=60) as r:
                body = json.load(r)
            return body, (time.perf_counter() - t) * 1000

        # The app with the most connections: the scale data set's manifest names its apps; the
        # first app (app-0000) is the busiest under its Zipf draw.
        apps, _ = get("/v1/mgmt/outbound-apps?limit=1")
        app = apps["items"][0]["id"]
        # The last app of the data set (the quietest under its Zipf draw) is app-NNNN.
        manifest = os.path.join(data, "scale.json")
        n_apps = json.load(open(manifest))["apps"] if os.path.exists(manifest) else 1
        quiet_app = f"app-{n_apps - 1:04}"
        # The user of the newest decision (busy under the Zipf draw) and the first user by id.
        newest, _ = get("/v1/mgmt/audit?limit=1")
        user = newest["items"][0]["userId"]
        users, _ = get("/v1/mgmt/users?limit=1")
        quiet_user = users["items"][0]["id"]
        lists = [
            (f"connections of {app}", f"/v1/mgmt/outbound-apps/{app}/connections?limit=100"),
            (f"audit of {app}", f"/v1/mgmt/audit?appId={app}&limit=100"),
            (f"audit of {quiet_app}", f"/v1/mgmt/audit?appId={quiet_app}&limit=100"),
            (f"audit of {user}", f"/v1/mgmt/audit?userId={user}&limit=100"),
            (f"audit of {quiet_user}", f"/v1/mgmt/audit?userId={quiet_user}&limit=100"),
            ("audit by time", "/v1/mgmt/audit?limit=100&since=2000-01-01T00:00:00Z"),
            ("users", "/v1/mgmt/users?limit=100"),
        ]
        print(f"| list (100 a page) | pages walked | page 1 | page 10 | page 100 | deepest | p50 | p99 | max |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, path in lists:
            times, cursor, n = [], None, 0
            while n < pages:
                sep = "&" if "?" in path else "?"
                body, ms = get(path + (f"{sep}cursor={urllib.parse.quote(cursor)}" if cursor else ""))
                times.append(ms)
                n += 1
                cursor = body.get("nextCursor")
                if not cursor:
                    break
            at = lambda i: f"{times[i]:.1f} ms" if len(times) > i else "—"
            q = sorted(times)
            p99 = q[min(len(q) - 1, int(len(q) * 0.99))]
            print(f"| {name} | {len(times)} | {at(0)} | {at(9)} | {at(99)} | {times[-1]:.1f} ms | "
                  f"{statistics.median(times):.1f} ms | {p99:.1f} ms | {max(times):.1f} ms |")
        print(f"resident memory after the walks: {rss_mib(proc.pid):.0f} MiB")
        if "--rotate" in sys.argv:
            rotate(base, key, get)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rotate(base, key, get):
    """Rotates the data key and waits for the re-encryption to finish: rows per second, and the
    latency of a read (a user, by id) made every 50 ms meanwhile, against the same before it."""
    def sample(seconds):
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            out.append(get("/v1/mgmt/users?limit=1")[1])
            time.sleep(0.05)
        return sorted(out)

    idle = sample(3)
    req = urllib.request.Request(f"{base}/v1/mgmt/keys/rotate", method="POST", data=b"{}",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status in (200, 202), r.status
    during = []
    while True:
        status, ms = get("/v1/mgmt/keys")
        during.append(ms)
        state = (status.get("reencryption") or {}).get("state")
        if state in ("done", "failed"):
            break
        time.sleep(0.05)
    took = time.monotonic() - started
    report = status["reencryption"].get("report") or {}
    rows = sum(report.values()) if report else 0
    during.sort()
    p99 = lambda q: q[min(len(q) - 1, int(len(q) * 0.99))]
    print(f"keys rotate: {state}; {rows} rows re-sealed in {took:.1f} s ({rows / took:.0f} rows/s); {report}")
    print(f"a management read every 50 ms: idle p50 {statistics.median(idle):.1f} ms, p99 {p99(idle):.1f} ms; "
          f"during the rotation p50 {statistics.median(during):.1f} ms, p99 {p99(during):.1f} ms")


if __name__ == "__main__":
    import urllib.parse  # noqa: E402  (used in main)
    main()
