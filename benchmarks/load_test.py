"""Load test for the Gradio Space: many concurrent API clients, throughput, latency and server memory.

    python benchmarks/load_test.py --model outputs/quickstart [--requests 200 --clients 16 --timeout 300]
    python benchmarks/load_test.py --url http://127.0.0.1:7860/ [--server_pid PID]

Without --url it starts `space/app.py` (FER_MODEL=--model, one torch thread) on a free 127.0.0.1 port
and stops it at the end. Each of `--clients` threads holds its own `gradio_client.Client` and calls
the `predict` endpoint with the same photo (a drawn face unless --image) until `--requests` calls have
been made or `--timeout` seconds have passed; a call still unanswered then counts as an error.
Prints and returns requests/s, p50/p95/max latency, errors, and the server's resident memory (with
its children) after one warm-up call, at each quarter of the calls and at the end: a leak keeps growing
over the second half, while the warm-up of worker threads, malloc arenas and caches levels off.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="model folder for a Space this script starts (FER_MODEL)")
    target.add_argument("--url", help="a Space that is already running, e.g. http://127.0.0.1:7860/")
    parser.add_argument("--server_pid", type=int, default=None, help="with --url: the server's pid, for its memory")
    parser.add_argument("--requests", type=int, default=200, help="calls in total")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (threads)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for all calls together")
    parser.add_argument("--startup_timeout", type=float, default=180.0, help="seconds for the server to come up")
    parser.add_argument("--image", default=None, help="photo to send (default: a drawn face)")
    parser.add_argument("--detector", default="auto", choices=["auto", "yunet", "haar"], help="FER_DETECTOR")
    parser.add_argument("--server_cpus", default=None,
                        help="pin the started server to these CPUs, e.g. 0,1 (a 2-vCPU Space); Linux only")
    parser.add_argument("--output", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.clients < 1:
        parser.error("--requests and --clients must be at least 1")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_set(text: str) -> set[int]:
    """'0,1' or '0-3' or '0-1,6' -> a set of CPU numbers."""
    cpus = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def start_space(model: str, detector: str, log, cpus: set[int] | None = None) -> tuple[subprocess.Popen, str]:
    """`space/app.py` on a free local port, one torch/OpenCV thread, offline; (process, url)."""
    port = free_port()
    env = dict(os.environ, FER_MODEL=str(model), FER_DETECTOR=detector, GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen([sys.executable, str(ROOT / "space" / "app.py")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=pin)  # noqa: PLW1509
    return proc, f"http://127.0.0.1:{port}/"


def wait_until_up(url: str, proc: subprocess.Popen | None, timeout: float, log_path: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = Path(log_path).read_text()[-3000:] if log_path else ""
            raise RuntimeError(f"the Space exited with code {proc.returncode} before serving:\n{tail}")
        try:
            with urllib.request.urlopen(url + "config", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the Space at {url} did not answer within {timeout:g} s")


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a process and its children, in MiB (None if unknown)."""
    if pid is None:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.Error:
        return None


def default_image(folder: str, tries: int = 30) -> str:
    """A drawn face (no real person) on a plain background that the default detector (YuNet) finds, as a PNG."""
    from PIL import Image

    from fer_hf.data.synthetic import draw_face
    from fer_hf.inference.faces import make_detector

    detector = make_detector("auto")
    for seed in range(tries):  # a face the detector finds: the load test then covers detect + crop + classify
        canvas = Image.new("RGB", (320, 240), (196, 206, 218))
        canvas.paste(draw_face("happiness", np.random.default_rng(seed), 160, True), (80, 40))
        if detector.detect(canvas):
            break
    path = os.path.join(folder, "face.png")
    canvas.save(path)
    return path


def make_client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


def hammer(url: str, image: str, requests: int, clients: int, timeout: float, latencies: list | None = None) -> dict:
    """`requests` predict calls from `clients` threads, each with its own Client, within `timeout` s.
    `latencies` (seconds, appended as calls complete) may be watched from another thread."""
    from gradio_client import handle_file

    lock, errors = threading.Lock(), Counter()
    latencies = [] if latencies is None else latencies
    tickets = iter(range(requests))
    start = time.monotonic()
    deadline = start + timeout

    def take() -> bool:
        with lock:
            return next(tickets, None) is not None and time.monotonic() < deadline

    def worker():
        try:
            client = make_client(url)
        except Exception as err:  # noqa: BLE001 - a client that cannot connect is one error, its share is not sent
            with lock:
                errors[f"connect: {type(err).__name__}: {str(err)[:120]}"] += 1
            return
        while take():
            t0 = time.monotonic()
            try:
                job = client.submit(handle_file(image), False, api_name="/predict")
                result = job.result(timeout=max(0.1, deadline - t0))
                if not isinstance(result, dict) or "emotion" not in result:
                    raise ValueError(f"unexpected answer {str(result)[:120]}")
                with lock:
                    latencies.append(time.monotonic() - t0)
            except Exception as err:  # noqa: BLE001
                with lock:
                    errors[f"{type(err).__name__}: {str(err)[:120]}"] += 1
        client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline + 30 - time.monotonic()))  # + a grace period for closing clients
    wall = time.monotonic() - start
    lat = np.asarray(latencies) * 1000
    done, failed = len(latencies), sum(errors.values())
    pct = (lambda q: round(float(np.percentile(lat, q)), 1)) if done else (lambda q: None)
    return {"completed": done, "errors": failed, "not_sent": max(0, requests - done - failed),
            "error_kinds": dict(errors.most_common(5)), "wall_s": round(wall, 2),
            "requests_per_s": round(done / wall, 2) if wall else None,
            "latency_ms": {"p50": pct(50), "p95": pct(95), "max": pct(100),
                           "mean": round(float(lat.mean()), 1) if done else None}}


def memory_figures(before: float | None, after: float | None, samples: list, done: int) -> dict:
    """RSS after warm-up, at the end, its growth, its peak, and the growth over the second half of the calls
    (a leak keeps growing there; allocator and cache warm-up do not)."""
    values = [v for _, v in samples if v is not None] + [v for v in (before, after) if v is not None]
    at = lambda share: next((v for n, v in samples if v is not None and n >= done * share), None)
    half = at(0.5)
    rounded = lambda v: None if v is None else round(v, 1)
    return {"before": rounded(before), "after": rounded(after),
            "growth": rounded(after - before) if before is not None and after is not None else None,
            "growth_second_half": rounded(after - half) if half is not None and after is not None else None,
            "peak": rounded(max(values)) if values else None,
            "at_quarters": [rounded(at(q)) for q in (0.25, 0.5, 0.75)] + [rounded(after)]}


def report(result: dict) -> str:
    lat, mem = result["latency_ms"], result["server_rss_mb"]
    mb = lambda v: "n/a" if v is None else f"{v:.1f} MiB"
    growth = "n/a" if mem["growth"] is None else f"{mem['growth']:+.1f} MiB"
    half = "n/a" if mem["growth_second_half"] is None else f"{mem['growth_second_half']:+.1f} MiB"
    return (f"{result['completed']}/{result['requests']} calls from {result['clients']} clients in {result['wall_s']} s: "
            f"{result['requests_per_s']} requests/s, latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
            f"max {lat['max']} ms; errors {result['errors']}, not sent {result['not_sent']}"
            + "".join(f"\n  error x{n}: {kind}" for kind, n in result["error_kinds"].items())
            + f"\nserver memory (RSS): {mb(mem['before'])} after warm-up, {mb(mem['after'])} after the run "
            f"({growth}; {half} over the second half of the calls), peak {mb(mem['peak'])}")


def main(argv: list[str] | None = None) -> dict:
    from gradio_client import handle_file

    args = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = tempfile.mkdtemp(prefix="fer_load_test_")
    proc, log_path, log = None, None, None
    try:
        if args.url:
            url, pid = args.url.rstrip("/") + "/", args.server_pid
        else:
            log_path = os.path.join(workdir, "server.log")
            log = open(log_path, "w")  # noqa: SIM115
            proc, url = start_space(args.model, args.detector, log, args.server_cpus and cpu_set(args.server_cpus))
            pid = proc.pid
        wait_until_up(url, proc, args.startup_timeout, log_path)
        image = args.image or default_image(workdir)
        warm = make_client(url)  # one call first: model and detector warm, lazy imports done
        warm.predict(handle_file(image), False, api_name="/predict")
        warm.close()
        before, latencies, samples, stop = rss_mb(pid), [], [], threading.Event()

        def watch():  # (calls completed, RSS) a few times a second: is memory flat, or still climbing?
            while not stop.wait(0.2):
                samples.append((len(latencies), rss_mb(pid)))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        figures = hammer(url, image, args.requests, args.clients, args.timeout, latencies)
        stop.set()
        watcher.join()
        after = rss_mb(pid)
        result = {"url": url, "model": args.model, "requests": args.requests, "clients": args.clients, **figures,
                  "server_rss_mb": memory_figures(before, after, samples, len(latencies))}
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log is not None:
            log.close()
    print(report(result))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
