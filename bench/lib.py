#!/usr/bin/env python3
"""Helpers for bench/run.sh (standard library only).

Subcommands:
  freeport                                  print a free 127.0.0.1 TCP port
  upstream-conf DIR PORT                    nginx config of the upstream (1 KiB body)
  proxy-conf DIR PORT UPSTREAM_PORT N       nginx proxy config with /hello plus N mixed routes
  route-spec I                              JSON of mixed route I (for checks)
  target-path N                             the path that scenarios with N routes load
  load ADMIN KEY FROM TO CONNS [SEQ]        PUT mixed routes FROM..TO-1; SEQ of them one at a time
  churn ADMIN KEY RATE POOL                 PUT RATE changes/s to POOL other routes until killed
  unchurn ADMIN KEY POOL                    delete the churn routes
  wait-route URL HOST TIMEOUT               wait until URL (with Host) answers 200 with 1 KiB
  cpu PID...                                utime+stime (clock ticks) of the processes
  rss PID                                   VmRSS in KiB
  parse-wrk FILE                            wrk --latency output as one JSON line
  report RESULTS.jsonl META.json            Markdown results table
"""

import json
import os
import re
import socket
import statistics
import sys
import threading
import time
import http.client

BODY = ("portico-bench-" * 80)[:1024]  # 1,024 bytes
assert len(BODY) == 1024


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    print(port)


def common_conf(d, name):
    return f"""worker_processes 1;
daemon on;
master_process on;
pid {d}/{name}.pid;
error_log {d}/{name}-error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
"""


def temp_paths(d, name):
    return "".join(
        f"  {k}_temp_path {d}/{name}-{k};\n"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def upstream_conf(d, port):
    print(common_conf(d, "upstream") + f"""http {{
  access_log off;
{temp_paths(d, "upstream")}  keepalive_requests 100000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} default_server reuseport backlog=4096;
    location / {{
      default_type text/plain;
      return 200 "{BODY}";
    }}
  }}
}}""")


# The mixed table: route i (i >= 0) is, by i % 10,
#   0-3: exact path  /svc{i}/v1/items/detail
#   4-7: prefix      /pfx{i}/api/*
#   8-9: host-bound  host h{i}.example.com, /api/*
# so the first N routes of a bigger table are the table of N routes.
def kind(i):
    k = i % 10
    return "exact" if k < 4 else ("prefix" if k < 8 else "host")


def route_spec(i):
    k = kind(i)
    if k == "exact":
        r = {"uri": f"/svc{i}/v1/items/detail"}
    elif k == "prefix":
        r = {"uri": f"/pfx{i}/api/*"}
    else:
        r = {"uri": "/api/*", "hosts": [f"h{i}.example.com"]}
    r["upstream_id"] = "1"
    return r


def target_index(n):
    # An exact-path route in the middle of the table.
    return (n // 2) // 10 * 10


def target_path(n):
    return f"/svc{target_index(n)}/v1/items/detail"


def proxy_conf(d, port, up_port, n):
    out = [common_conf(d, "proxy"), "http {\n  access_log off;\n", temp_paths(d, "proxy")]
    out.append(f"""  keepalive_requests 100000;
  keepalive_timeout 300s;
  server_names_hash_max_size 262144;
  server_names_hash_bucket_size 128;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  upstream up {{
    server 127.0.0.1:{up_port};
    keepalive 256;
  }}
  server {{
    listen 127.0.0.1:{port} default_server backlog=4096;
    server_name _;
    location = /hello {{ proxy_pass http://up; }}
""")
    hosts = []
    for i in range(n):
        k = kind(i)
        if k == "exact":
            out.append(f"    location = /svc{i}/v1/items/detail {{ proxy_pass http://up; }}\n")
        elif k == "prefix":
            out.append(f"    location /pfx{i}/api/ {{ proxy_pass http://up; }}\n")
        else:
            hosts.append(i)
    out.append("  }\n")
    for i in hosts:
        out.append(
            f"  server {{ listen 127.0.0.1:{port}; server_name h{i}.example.com;"
            f" location /api/ {{ proxy_pass http://up; }} }}\n"
        )
    out.append("}\n")
    sys.stdout.write("".join(out))


def split_admin(admin):
    # http://127.0.0.1:PORT/apisix/admin
    m = re.match(r"http://([^/:]+):(\d+)(/.*)$", admin)
    return m.group(1), int(m.group(2)), m.group(3).rstrip("/")


def put(conn, base, key, path, body):
    """PUT one object. A keep-alive connection that the server closed is opened again and the
    PUT (idempotent) sent once more."""
    data = json.dumps(body).encode()
    for attempt in (1, 2):
        try:
            conn.request("PUT", base + path, body=data,
                         headers={"X-API-KEY": key, "Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read()
            break
        except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest,
                http.client.BadStatusLine):
            conn.close()
            if attempt == 2:
                raise
    if resp.status not in (200, 201):
        raise RuntimeError(f"PUT {path}: {resp.status} {text[:200]!r}")


def load(admin, key, start, end, conns, seq=0, limit=0):
    """PUT routes start..end-1: the first `seq` one at a time on one connection, the rest
    over `conns` keep-alive connections in parallel, within `limit` seconds (0: no limit).
    Prints JSON timings (with "done": the routes PUT; fewer than asked when the limit hit) and
    progress to stderr."""
    host, port, base = split_admin(admin)
    start, end, conns, seq, limit = int(start), int(end), int(conns), int(seq), float(limit)
    result = {"routes": end - start}
    t0 = time.monotonic()
    deadline = t0 + limit if limit > 0 else float("inf")
    progress = []  # (routes loaded so far, seconds)
    step = max(1000, (end - start) // 20)
    first = min(end, start + seq)
    if first > start:
        c = http.client.HTTPConnection(host, port, timeout=60)
        for i in range(start, first):
            put(c, base, key, f"/routes/r{i}", route_spec(i))
        c.close()
        secs = time.monotonic() - t0
        result["sequential"] = {"routes": first - start, "seconds": round(secs, 2),
                                "per_second": round((first - start) / secs, 1)}
    t1 = time.monotonic()
    errors = []
    if end > first:
        todo = list(range(first, end))
        lock = threading.Lock()
        pos = [0]
        done = [0]

        def worker():
            c = http.client.HTTPConnection(host, port, timeout=120)
            try:
                while True:
                    with lock:
                        if pos[0] >= len(todo) or errors or time.monotonic() > deadline:
                            return
                        i = todo[pos[0]]
                        pos[0] += 1
                    put(c, base, key, f"/routes/r{i}", route_spec(i))
                    with lock:
                        done[0] += 1
                        if done[0] % step == 0:
                            secs = time.monotonic() - t0
                            n = first + done[0]
                            progress.append([n, round(secs, 1)])
                            print(f"[bench]   {n:,} routes after {secs:.0f} s", file=sys.stderr)
            except Exception as e:  # noqa: BLE001
                errors.append(str(e))
            finally:
                c.close()

        threads = [threading.Thread(target=worker) for _ in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.monotonic() - t1
        if first + done[0] < end:
            result["incomplete"] = True
        end = first + done[0]
        result["parallel"] = {"routes": end - first, "connections": conns,
                              "seconds": round(secs, 2),
                              "per_second": round((end - first) / secs, 1)}
    result["seconds"] = round(time.monotonic() - t0, 2)
    result["done"] = end - start
    result["progress"] = progress
    print(json.dumps(result))
    if errors:
        print("load failed: " + errors[0], file=sys.stderr)
        sys.exit(1)


def churn(admin, key, rate, pool, count_file=None):
    """PUT changes to `pool` other routes at `rate` per second, until killed (SIGTERM). Each PUT
    changes the route (a new `desc`), so every one is a real configuration change. On SIGTERM
    writes "changes seconds" to count_file."""
    import signal
    host, port, base = split_admin(admin)
    rate, pool = float(rate), int(pool)
    c = http.client.HTTPConnection(host, port, timeout=30)
    n = 0
    start = time.monotonic()

    def stop(*_):
        if count_file:
            with open(count_file, "w") as f:
                f.write(f"{n} {time.monotonic() - start:.2f}\n")
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        i = n % pool
        body = {"uri": f"/churn/{i}/*", "upstream_id": "1", "desc": f"change {n}"}
        try:
            put(c, base, key, f"/routes/churn{i}", body)
        except Exception as e:  # noqa: BLE001
            print(f"churn: {e}", file=sys.stderr)
            c.close()
            c = http.client.HTTPConnection(host, port, timeout=30)
        n += 1
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def churn_init(admin, key, pool):
    host, port, base = split_admin(admin)
    c = http.client.HTTPConnection(host, port, timeout=30)
    for i in range(int(pool)):
        put(c, base, key, f"/routes/churn{i}",
            {"uri": f"/churn/{i}/*", "upstream_id": "1", "desc": "initial"})


def unchurn(admin, key, pool):
    host, port, base = split_admin(admin)
    c = http.client.HTTPConnection(host, port, timeout=30)
    for i in range(int(pool)):
        c.request("DELETE", f"{base}/routes/churn{i}", headers={"X-API-KEY": key})
        c.getresponse().read()


def wait_route(url, host, timeout):
    m = re.match(r"http://([^/:]+):(\d+)(/.*)$", url)
    h, p, path = m.group(1), int(m.group(2)), m.group(3)
    deadline = time.monotonic() + float(timeout)
    t0 = time.monotonic()
    last = None
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(h, p, timeout=5)
            c.request("GET", path, headers={"Host": host} if host else {})
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and len(body) == 1024:
                print(round(time.monotonic() - t0, 2))
                return
            last = f"{r.status} ({len(body)} bytes)"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    print(f"{url} (Host {host or '-'}) not ready after {timeout}s: {last}", file=sys.stderr)
    sys.exit(1)


def stat_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return int(fields[11]) + int(fields[12])


def cpu(*pids):
    print(sum(stat_ticks(p) for p in pids))


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                print(line.split()[1])
                return
    print(0)


def to_ms(v, unit):
    v = float(v)
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[unit]


def parse_wrk(path):
    text = open(path).read()
    out = {"rps": None, "requests": 0, "p50_ms": None, "p99_ms": None,
           "non2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m:
            out[key] = round(to_ms(m.group(1), m.group(2)), 3)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(x) for x in m.groups())
    print(json.dumps(out))


def record(target, scenario, conc, rnd, wrk_file, cpu0, cpu1, t0, t1, rss_kb, load1):
    """One measurement as a JSON line: wrk numbers plus the proxy's CPU and RSS."""
    import io
    from contextlib import redirect_stdout
    buf = io.StringIO()
    with redirect_stdout(buf):
        parse_wrk(wrk_file)
    r = json.loads(buf.getvalue())
    secs = os.sysconf("SC_CLK_TCK")
    # user:system ticks (a plain number: their sum)
    (u0, _, s0), (u1, _, s1) = cpu0.partition(":"), cpu1.partition(":")
    cpu_s = (int(u1) + int(s1 or 0) - int(u0) - int(s0 or 0)) / secs
    user_s = (int(u1) - int(u0)) / secs if s0 and s1 else None
    wall = float(t1) - float(t0)
    r.update({
        "target": target, "scenario": scenario, "conc": int(conc), "round": int(rnd),
        "cpu_us_per_req": round(cpu_s * 1e6 / r["requests"], 2) if r["requests"] else None,
        "user_us_per_req": (round(user_s * 1e6 / r["requests"], 2)
                            if r["requests"] and user_s is not None else None),
        "cpu_pct": round(cpu_s * 100 / wall, 1) if wall > 0 else None,
        "rss_kb": int(rss_kb), "load1": float(load1),
    })
    if r["rps"] is None:
        print(f"wrk output not understood: {wrk_file}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(r))
    print(f"[bench]   {scenario} c={conc} round {rnd} {target:<15}{r['rps']:>9.0f} req/s  "
          f"p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  {r['cpu_us_per_req']} us/req "
          f"(user {r['user_us_per_req']})  "
          f"cpu {r['cpu_pct']}%  rss {int(rss_kb) // 1024} MiB  "
          f"errors {r['non2xx'] + r['socket_errors']}  load {load1}", file=sys.stderr)


SCENARIOS = {
    "a": "(a) one route",
    "b": "(b) {:,} routes",
    "c": "(c) {:,} routes",
    "d": "(d) one route + churn",
    "e": "(e) {:,} routes + churn",
    "f": "(f) limit-count + prometheus",
    "g": "(g) key-auth + limit-count + prometheus",
}


def fmt_rps(v):
    return f"{v / 1000:.1f}k"


def ratio(p, n):
    return f"{p / n:.2f}" if p and n else "—"


def report(results_path, meta_path):
    meta = json.load(open(meta_path))
    sizes = meta.get("sizes", {})
    label = {k: v.format(sizes.get(k, 0)) for k, v in SCENARIOS.items()}
    rows = [json.loads(l) for l in open(results_path) if l.strip()]
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["conc"], r["target"]), []).append(r)

    def agg(key):
        g = groups.get(key)
        if not g:
            return None
        med = lambda f: statistics.median([x[f] for x in g if x.get(f) is not None] or [0])
        return {
            "n": len(g),
            "rps": med("rps"),
            "min": min(x["rps"] or 0 for x in g),
            "max": max(x["rps"] or 0 for x in g),
            "p50": med("p50_ms"),
            "p99": med("p99_ms"),
            "us": med("cpu_us_per_req"),
            "cpu": med("cpu_pct"),
            "rss": med("rss_kb") / 1024,
            "bad": sum(x["non2xx"] + x["socket_errors"] for x in g),
        }

    concs = sorted({r["conc"] for r in rows})
    out = []
    out.append("| scenario | c | target | req/s median (min–max) | ×nginx | p50 ms | ×nginx "
               "| p99 ms | ×nginx | proxy CPU % | CPU µs/req | ×nginx | RSS MB | ×nginx | errors |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    steady = {}  # conc -> portico steady (a) and nginx (a)
    for sc in ("a", "b", "c", "d", "e"):
        for c in concs:
            ng = agg((sc, c, "nginx"))
            if sc in ("d", "e"):
                base = agg((sc, c, "portico-steady"))
                po = agg((sc, c, "portico-churn"))
                ng = agg(("a", c, "nginx")) if sc == "d" else agg(("c", c, "nginx"))
                lines = [("Portico, no churn", base), ("Portico, churn", po)]
            else:
                po = agg((sc, c, "portico"))
                lines = [("nginx", ng), ("Portico", po)]
                one = agg((sc, c, "portico-one"))
                if one:
                    lines.append(("Portico, one route, same rounds", one))
            if not any(x for _, x in lines):
                continue
            for name, a in lines:
                if not a:
                    continue
                is_ng = name == "nginx"
                r = lambda f: "1.00" if is_ng else ratio(a[f], ng[f] if ng else None)
                out.append(
                    f"| {label[sc]} | {c} | {name} | {fmt_rps(a['rps'])} "
                    f"({fmt_rps(a['min'])}–{fmt_rps(a['max'])}) | {r('rps')} | "
                    f"{a['p50']:.2f} | {r('p50')} | {a['p99']:.2f} | {r('p99')} | "
                    f"{a['cpu']:.0f} | {a['us']:.1f} | {r('us')} | {a['rss']:.1f} | {r('rss')} "
                    f"| {a['bad']} |"
                )
    out.append("")
    out.append("×nginx is Portico ÷ nginx for the same scenario and connection count (for the "
               "churn rows: ÷ nginx of (a), or of (c) for (e)). Latency ratios above 1 and "
               "req/s ratios below 1 mean Portico is worse.")
    # Targets
    out.append("")
    out.append("**Targets.** `req/s ratio` is the target as stated (medians); `CPU ratio` is the "
               "same comparison made with CPU µs per request (e.g. nginx µs/req ÷ Portico µs/req), "
               "which is what the req/s ratio would be with the proxy as the only bottleneck: it is "
               "less sensitive to a busy machine. ✅ met, ❌ not met (on the req/s ratio).")
    out.append("")
    out.append("| target | c | req/s ratio | CPU ratio | met |")
    out.append("|---|---|---|---|---|")

    def row(what, c, num, den, lower_is_better=False, bound=0.9, cpu=None):
        if not (num and den):
            return
        v = num / den
        ok = (v <= bound) if lower_is_better else (v >= bound)
        cpu_txt = f"{cpu:.2f}" if cpu else "—"
        out.append(f"| {what} | {c} | {v:.2f} | {cpu_txt} | {'✅' if ok else '❌'} |")

    for c in concs:
        ng_a, po_a = agg(("a", c, "nginx")), agg(("a", c, "portico"))
        if ng_a and po_a:
            row("one route: Portico ≥ 0.9× nginx req/s", c, po_a["rps"], ng_a["rps"],
                cpu=ng_a["us"] / po_a["us"] if po_a["us"] else None)
            row("one route: Portico p99 ≤ 1.2× nginx p99", c, po_a["p99"], ng_a["p99"],
                lower_is_better=True, bound=1.2)
        for sc, what in (("f", "limit-count + prometheus"), ("g", "key-auth + limit-count + prometheus")):
            po, ng = agg((sc, c, "portico")), agg((sc, c, "nginx"))
            if po and ng:
                row(f"{what}: Portico ≥ 0.9× bare nginx req/s", c, po["rps"], ng["rps"],
                    cpu=ng["us"] / po["us"] if po["us"] else None)
        for sc in ("b", "c"):
            po, ng = agg((sc, c, "portico")), agg((sc, c, "nginx"))
            size = f"{sizes.get(sc, 0):,}"
            one = agg((sc, c, "portico-one"))
            if po and one:
                what = f"{size} routes ≥ 0.9× one-route req/s (Portico; one route in the same rounds)"
                if sc == "b":
                    what += " (informative)"
                row(what, c, po["rps"], one["rps"], cpu=one["us"] / po["us"] if po["us"] else None)
            if po and po_a:
                what = f"{size} routes ÷ one route of (a), minutes earlier (Portico)"
                if sc == "b" or one:
                    what += " (informative)"
                row(what, c, po["rps"], po_a["rps"], cpu=po_a["us"] / po["us"] if po["us"] else None)
            if ng and ng_a:
                out.append(f"| (nginx, for comparison) {size} routes ÷ one route | {c} | "
                           f"{ng['rps'] / ng_a['rps']:.2f} | {ng_a['us'] / ng['us']:.2f} | — |")
        for sc in ("d", "e"):
            base, po = agg((sc, c, "portico-steady")), agg((sc, c, "portico-churn"))
            if base and po:
                what = "churn ≥ 0.9× steady" + (
                    f" (at {sizes.get('e', 0):,} routes, informative)" if sc == "e" else "")
                row(what, c, po["rps"], base["rps"], cpu=base["us"] / po["us"] if po["us"] else None)
                ng = agg(("a" if sc == "d" else "c", c, "nginx"))
                if ng:
                    out.append(f"| churn ÷ nginx steady (informative) | {c} | "
                               f"{po['rps'] / ng['rps']:.2f} | {ng['us'] / po['us']:.2f} | — |")
    busy = [r for r in rows if (r.get("cpu_pct") or 0) < 90]
    if busy:
        out.append("")
        out.append(f"⚠️ In {len(busy)} of {len(rows)} runs the proxy used less than 90% of its core: "
                   "there the load generator (or the machine, busy with other work) was the "
                   "bottleneck, not the proxy, and req/s and latency say little about the proxy. "
                   "CPU µs/req is the more robust number then.")
    if meta.get("loads"):
        out.append("")
        out.append("**Loading routes through the Admin API** (the first PUTs one at a time, then "
                   "several keep-alive connections in parallel; `up`: with the gateway running, "
                   "`cp`: the control plane alone, used when `up` took longer than the limit):")
        out.append("")
        out.append("| routes | via | one at a time | parallel | total | until the last one routes |")
        out.append("|---|---|---|---|---|---|")
        for ld in meta["loads"]:
            s = ld.get("sequential")
            p = ld.get("parallel")
            routable = ld.get("routable_after")
            if ld.get("incomplete"):
                routable_txt = f"stopped at the limit with {ld['from'] + ld['done']:,} routes"
            elif ld.get("via") == "cp":
                routable_txt = f"{routable} s after the last PUT (restart of portico up)"
            else:
                routable_txt = f"{routable} s after the last PUT"
            if ld.get("settled_after") is not None:
                routable_txt += f"; Portico idle {ld['settled_after']:g} s later"
            out.append(
                f"| {ld['from']:,}→{ld['from'] + ld.get('done', ld['to'] - ld['from']):,} | {ld.get('via', 'up')} | "
                + (f"{s['routes']:,} in {s['seconds']} s ({s['per_second']}/s)" if s else "—")
                + " | "
                + (f"{p['routes']:,} in {p['seconds']} s ({p['per_second']}/s, "
                   f"{p['connections']} conns)" if p else "—")
                + f" | {ld['seconds']} s | {routable_txt} |"
            )
        for ld in meta["loads"]:
            if ld.get("progress"):
                out.append("")
                out.append(f"Load progress via {ld.get('via', 'up')} from {ld['from']:,} "
                           "(routes in the table: seconds since this load began): "
                           + ", ".join(f"{n / 1000:g}k: {s:.0f}" for n, s in ld["progress"]))
    if meta.get("nginx_start"):
        out.append("")
        out.append("nginx start (parse + start) with the generated table: "
                   + ", ".join(f"{k} routes: {v} s" for k, v in meta["nginx_start"].items()))
    print("\n".join(out))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {
        "freeport": freeport,
        "upstream-conf": upstream_conf,
        "proxy-conf": lambda d, p, u, n: proxy_conf(d, p, u, int(n)),
        "route-spec": lambda i: print(json.dumps(route_spec(int(i)))),
        "target-path": lambda n: print(target_path(int(n))),
        "load": load,
        "churn": churn,
        "churn-init": churn_init,
        "unchurn": unchurn,
        "wait-route": wait_route,
        "cpu": cpu,
        "rss": rss,
        "parse-wrk": parse_wrk,
        "record": record,
        "report": report,
    }[cmd]
    fn(*args)


if __name__ == "__main__":
    main()
