"""A class at work: many students answering one assignment at once through gradio_client.

    python -m benchmarks.classroom --students 100 [--url URL --password PASSWORD]

Without --url it starts `python app.py` itself, once per database in --databases (SQLite in a temporary file;
PostgreSQL at --postgres-url, default $PATHGEN_TEST_POSTGRES_URL), creates an assignment, and lets every student
join (arriving over --arrival-s seconds) and answer its slides, pausing --pause-min to --pause-max seconds between
answers as a class does; the students run as gradio_client threads in --client-processes processes. It
prints answers sent (acknowledged), answers stored (read back from the dashboard's CSV), lost and duplicated
answers, p50/p95 latency of an answer, and the server's CPU time per answer. Then a saturation run: fewer
students answering with no pause at all, for answers per second.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx

from benchmarks.utils import api_client, cpu_seconds, free_port

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=100, help="Concurrent students in the paced run.")
    parser.add_argument("--slides", type=int, default=10, help="Slides in the assignment (answers per student).")
    parser.add_argument("--pause-min", type=float, default=3.0, help="Shortest pause between a student's answers (s).")
    parser.add_argument("--pause-max", type=float, default=8.0, help="Longest pause between a student's answers (s).")
    parser.add_argument("--saturation-students", type=int, default=10,
                        help="Students answering with no pause in the saturation run (0: skip it).")
    parser.add_argument("--arrival-s", type=float, default=20.0,
                        help="Students of the paced run arrive (connect and join) spread uniformly over this many "
                             "seconds, as a class opening a link does (0: all in the same instant).")
    parser.add_argument("--client-processes", type=int, default=4,
                        help="Processes the students are spread over (threads within each); one process for 100 "
                             "gradio_client threads spends its time contending for the interpreter lock.")
    parser.add_argument("--url", default=None, help="A running app to drive (default: start one per database).")
    parser.add_argument("--password", default=os.environ.get("PATHGEN_INSTRUCTOR_PASSWORD"),
                        help="Instructor password of the app at --url (default: $PATHGEN_INSTRUCTOR_PASSWORD).")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"],
                        help="Databases to run against when starting the app here.")
    parser.add_argument("--postgres-url", default=os.environ.get("PATHGEN_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL for the postgresql run (default: $PATHGEN_TEST_POSTGRES_URL).")
    parser.add_argument("--seed", type=int, default=0, help="Seed for the students' pauses.")
    parser.add_argument("--startup-timeout", type=float, default=600.0, help="Seconds to wait for the app to serve.")
    parser.add_argument("--output", default=None, help="Also write the results to this JSON file.")
    return parser.parse_args(argv)


def start_app(database_url: str, password: str, timeout: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PATHGEN_DATABASE_URL": database_url, "PATHGEN_INSTRUCTOR_PASSWORD": password,
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    # A session of its own puts the server in its own scheduling group (Linux autogroup), so the 100 client
    # threads share the cores with it as one group rather than crowding it out thread by thread, as students'
    # browsers on their own machines cannot.
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"The app did not start within {timeout:.0f} s.")


def student(url: str, code: str, nickname: str, slides: int, pauses: list[float], out: dict,
            arrival_s: float = 0.0) -> None:
    """Arrives, joins and answers every slide; records each acknowledged answer's latency."""
    time.sleep(arrival_s)
    stage = "connect"
    try:
        # gradio_client's own file download opens a new connection and temporary file per image, several times
        # the server's cost per answer; the student fetches each slide's image on one connection, as a browser does.
        client = api_client(url, download_files=False)
        images = httpx.Client(timeout=30)
        stage = "join"
        _, _, _, _, slide, _ = client.predict(code, nickname, "", api_name="/assignment_join")
        stage = "answer"
        for i in range(slides):
            time.sleep(pauses[i])
            started = time.perf_counter()
            _, image, _, next_slide, feedback = client.predict("adipose", slide, api_name="/assignment_answer")
            if isinstance(image, dict) and image.get("url"):
                images.get(image["url"]).raise_for_status()
            elapsed = time.perf_counter() - started
            if feedback.startswith("⚠️"):
                out["errors"].append(feedback)
                continue
            out["latencies"].append(elapsed)
            out["acknowledged"][nickname] += 1
            slide = next_slide
    except Exception as error:  # a failed student is counted, not fatal to the benchmark
        out["errors"].append(f"{stage}: {repr(error)[:200]}")


def student_group(url: str, code: str, slides: int, plans: list[tuple[str, list[float], float]]) -> dict:
    """One client process: its students as threads, so 100 students do not contend for one interpreter lock."""
    out = {"latencies": [], "errors": [], "acknowledged": Counter()}
    threads = [threading.Thread(target=student, args=(url, code, nickname, slides, pauses, out, arrival))
               for nickname, pauses, arrival in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def run_class(url: str, password: str, students: int, slides: int, pause: tuple[float, float], seed: int,
              server_pid: int | None, processes: int = 1, arrival_s: float = 0.0) -> dict:
    instructor = api_client(url)
    message, code = instructor.predict(password, slides, "mixed", ["adipose", "stroma", "mucus", "debris"], 50, "label",
                                       True, api_name="/assignment_create")
    if not message.startswith("Created"):
        raise SystemExit(f"Could not create an assignment: {message}")
    rng = random.Random(seed)
    plans = [(f"s{i:03d}", [rng.uniform(*pause) for _ in range(slides)], rng.uniform(0, arrival_s))
             for i in range(students)]
    groups = [plans[i::processes] for i in range(processes)]
    out = {"latencies": [], "errors": [], "acknowledged": Counter()}
    cpu_before, started = cpu_seconds(server_pid) if server_pid else None, time.perf_counter()
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        for part in pool.map(student_group, [url] * processes, [code] * processes, [slides] * processes, groups):
            out["latencies"] += part["latencies"]
            out["errors"] += part["errors"]
            out["acknowledged"].update(part["acknowledged"])
    wall = time.perf_counter() - started
    cpu_after = cpu_seconds(server_pid) if server_pid else None
    csv_path = instructor.predict(password, code, api_name="/dashboard_results")[5]
    rows = list(csv.DictReader(open(csv_path))) if csv_path else []
    stored = Counter(r["nickname"] for r in rows)
    sent = sum(out["acknowledged"].values())
    latencies = sorted(out["latencies"])
    return {
        "students": students, "slides": slides, "answers_sent": sent, "answers_stored": len(rows),
        "lost": sum(max(0, n - stored[k]) for k, n in out["acknowledged"].items()),
        "duplicates": len(rows) - len({(r["nickname"], r["slide"]) for r in rows}),
        "errors": len(out["errors"]), "first_errors": out["errors"][:3],
        "p50_s": statistics.median(latencies) if latencies else None,
        "p95_s": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
        "wall_s": wall, "answers_per_s": sent / wall if wall else None,
        "server_cpu_ms_per_answer": (cpu_after - cpu_before) * 1000 / sent if sent and cpu_before is not None
        and cpu_after is not None else None,
    }


def report(label: str, result: dict) -> None:
    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    print(f"{label}: {result['students']} students x {result['slides']} slides: sent {result['answers_sent']}, "
          f"stored {result['answers_stored']}, lost {result['lost']}, duplicates {result['duplicates']}, "
          f"errors {result['errors']}; p50 {fmt(result['p50_s'], '.3f')} s, p95 {fmt(result['p95_s'], '.3f')} s; "
          f"{fmt(result['answers_per_s'], '.1f')} answers/s; server CPU {fmt(result['server_cpu_ms_per_answer'], '.1f')} "
          f"ms per answer", flush=True)


def run_all(args: argparse.Namespace, url: str, password: str, pid: int | None, label: str) -> dict:
    paced = run_class(url, password, args.students, args.slides, (args.pause_min, args.pause_max), args.seed, pid,
                      min(args.client_processes, args.students), args.arrival_s)
    report(f"[{label}] paced", paced)
    results = {"paced": paced}
    if args.saturation_students:
        burst = run_class(url, password, args.saturation_students, args.slides, (0.0, 0.0), args.seed, pid,
                          min(args.client_processes, args.saturation_students))
        report(f"[{label}] saturation (no pause)", burst)
        results["saturation"] = burst
    return results


def main(args: argparse.Namespace) -> int:
    results = {"command": " ".join([sys.executable, "-m", "benchmarks.classroom", *sys.argv[1:]]), "runs": {}}
    if args.url:
        if not args.password:
            raise SystemExit("--url needs the app's instructor password (--password or $PATHGEN_INSTRUCTOR_PASSWORD).")
        results["runs"]["url"] = run_all(args, args.url, args.password, None, args.url)
    for database in ([] if args.url else args.databases):
        if database == "postgresql" and not args.postgres_url:
            print("[postgresql] skipped: give --postgres-url or set PATHGEN_TEST_POSTGRES_URL", flush=True)
            continue
        with tempfile.TemporaryDirectory() as folder:
            db_url = args.postgres_url if database == "postgresql" else f"sqlite:///{folder}/bench.sqlite3"
            password = secrets.token_urlsafe(16)
            process, url = start_app(db_url, password, args.startup_timeout)
            try:
                results["runs"][database] = run_all(args, url, password, process.pid, database)
            finally:
                process.kill()
                process.wait(30)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
