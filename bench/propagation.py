#!/usr/bin/env python3
"""Config propagation: time from a write on the control plane to "applied" on every data-plane
node of the cluster, over N writes (default 200), against a real etcd.

Starts etcd, one `portico cp` and two `portico dp` nodes (all on 127.0.0.1, temporary folders),
then for each write: PUT a new route through the Admin API and poll every node's proxy until
the route answers. Reports p50, p99 and max in milliseconds.

    python3 bench/propagation.py            # 200 writes
    WRITES=50 python3 bench/propagation.py
    PORTICO_BIN=target/release/portico python3 bench/propagation.py
"""

import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PORTICO_BIN", os.path.join(ROOT, "target", "release", "portico"))
WRITES = int(os.environ.get("WRITES", "200"))
KEY = "propagation-bench-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path="/", timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing answered on port {port}")


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
        # proxy's delayed ACK (40 ms), which would be measured as propagation time.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def start_portico(args, data, env_extra):
    env = dict(os.environ)
    env.update({
        "PORTICO_DATA": data, "PORTICO_ADMIN_KEY": KEY, "PORTICO_KEYRING": "bench",
        "PORTICO_ADMIN_ADDR": "127.0.0.1:0", "PORTICO_PROXY_ADDR": "127.0.0.1:0",
        "PORTICO_PROXY_TLS_ADDR": "127.0.0.1:0", "PORTICO_STATUS_ADDR": "127.0.0.1:0",
        "PORTICO_LOG": "warn",
    })
    env.update(env_extra)
    proc = subprocess.Popen([BIN] + args, stdout=subprocess.PIPE, text=True, env=env)
    addrs = {}
    for line in proc.stdout:
        line = line.strip()
        if line.startswith("admin API: http://"):
            addrs["admin"] = line.split("http://")[1].split("/")[0]
        if line.startswith("proxy: http://"):
            addrs["proxy"] = line.split("http://")[1]
        if line == "ready":
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, addrs


def hostport(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def main():
    if not os.path.exists(BIN):
        subprocess.check_call(["cargo", "build", "--release", "-p", "portico"], cwd=ROOT)
    if not shutil.which("etcd"):
        raise SystemExit("etcd is not installed (apt-get install etcd-server)")
    tmp = tempfile.mkdtemp(prefix="portico-propagation-")
    procs = []
    try:
        cport, pport = free_port(), free_port()
        etcd = subprocess.Popen([
            "etcd", "--data-dir", os.path.join(tmp, "etcd"), "--name", "n1",
            "--listen-client-urls", f"http://127.0.0.1:{cport}",
            "--advertise-client-urls", f"http://127.0.0.1:{cport}",
            "--listen-peer-urls", f"http://127.0.0.1:{pport}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
            "--initial-cluster", f"n1=http://127.0.0.1:{pport}",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(etcd)
        wait_http(cport, "/version")
        endpoint = f"http://127.0.0.1:{cport}"

        up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        threading.Thread(target=up.serve_forever, daemon=True).start()
        upstream = f"127.0.0.1:{up.server_address[1]}"

        cp, cp_addr = start_portico(["cp", "--etcd-endpoints", endpoint], os.path.join(tmp, "cp"), {})
        procs.append(cp)
        nodes = []
        for i in range(2):
            dp, dp_addr = start_portico(["dp", "--etcd-endpoints", endpoint], os.path.join(tmp, f"dp{i}"), {})
            procs.append(dp)
            nodes.append(hostport(dp_addr["proxy"]))

        admin = http.client.HTTPConnection(*hostport(cp_addr["admin"]))

        def put(path, body):
            admin.request("PUT", path, json.dumps(body), {"X-API-KEY": KEY})
            r = admin.getresponse()
            r.read()
            if r.status not in (200, 201):
                raise SystemExit(f"PUT {path}: {r.status}")

        put("/apisix/admin/upstreams/bench", {"nodes": {upstream: 1}})
        probes = [http.client.HTTPConnection(h, p) for h, p in nodes]
        samples = []
        put_times = []
        for i in range(WRITES):
            path = f"/p{i}"
            t0 = time.perf_counter()
            put(f"/apisix/admin/routes/bench-{i}", {"uri": path, "upstream_id": "bench"})
            put_times.append((time.perf_counter() - t0) * 1000)
            pending = set(range(len(probes)))
            while pending:
                for n in list(pending):
                    c = probes[n]
                    c.request("GET", path)
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        pending.discard(n)
                if time.perf_counter() - t0 > 10:
                    raise SystemExit(f"write {i} not applied within 10 s")
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        pct = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
        print(f"| writes | nodes | p50 ms | p99 ms | max ms |")
        print(f"|---|---|---|---|---|")
        print(f"| {WRITES} | {len(nodes)} | {pct(0.5):.1f} | {pct(0.99):.1f} | {samples[-1]:.1f} |")
        put_times.sort()
        print(f"(the Admin API write itself: p50 {put_times[len(put_times)//2]:.1f} ms, p99 {put_times[min(len(put_times)-1, int(0.99*len(put_times)))]:.1f} ms)")
        print(f"command: python3 bench/propagation.py (WRITES={WRITES}), load average {os.getloadavg()[0]:.2f}")
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
