"""How fast the teaching app answers: Explore tissue switch, next quiz question, many quiz-takers at once.

    python -m benchmarks.app

Server-side times run the named endpoints in-process through gradio's own pre- and post-processing
(`Blocks.process_api`, no network). The load test starts `python app.py` as a separate process and drives it
with one gradio_client session per simulated trainee, all in threads, each taking a quiz (start, then answer
and next for every question) with a reading pause between calls (--think-s; 0 makes it a burst in which
every trainee clicks again the instant a reply arrives); it reports the p95 latency of those calls and how
many failed. It also times
start-up: from launching `python app.py` to its first served page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.utils import api_client, cpu_seconds, free_port

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"startup_s": 30.0, "explore_switch_ms": 300.0, "next_question_ms": 100.0, "quiz_p95_s": 1.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", default=os.environ.get("PATHGEN_ASSETS_DIR") or str(REPO / "assets"),
                        help="Assets folder (default: $PATHGEN_ASSETS_DIR, else assets/).")
    parser.add_argument("--repeats", type=int, default=45, help="Timed tissue switches and next-question calls.")
    parser.add_argument("--users", type=int, default=20, help="Concurrent gradio_client sessions in the load test.")
    parser.add_argument("--questions", type=int, default=5, help="Questions in each simulated trainee's quiz.")
    parser.add_argument("--think-s", type=float, default=2.0,
                        help="Mean pause of a trainee between calls, drawn uniformly from 0.5x to 1.5x (0: no pause).")
    parser.add_argument("--seed", type=int, default=0, help="Seed for the trainees' pauses.")
    parser.add_argument("--output", default=None, help="Also write the results to this JSON file.")
    parser.add_argument("--startup-timeout", type=float, default=120.0,
                        help="Seconds to wait for the app process to start serving.")
    return parser.parse_args(argv)


def server_side_times(assets: str, repeats: int) -> dict[str, list[float]]:
    """Seconds per Explore tissue switch and per next-question call, handler plus gradio's processing."""
    # Imported here, not at the top, so that --help answers without loading torch and gradio.
    from gradio.state_holder import SessionState

    import app
    from pathgen.data import TISSUE_CLASSES
    from pathgen.quiz import MAX_QUESTIONS

    demo = app.create_app(assets)
    endpoints = {fn.api_name: fn for fn in demo.fns.values()}
    session = SessionState(demo)

    def call(name: str, *inputs) -> float:
        started = time.perf_counter()
        asyncio.run(demo.process_api(block_fn=endpoints[name], inputs=list(inputs), state=session))
        return time.perf_counter() - started

    keys = [tissue.key for tissue in TISSUE_CLASSES]
    call("explore_show", keys[-1])  # warm-up: first calls pay for lazy imports
    explore = [call("explore_show", keys[i % len(keys)]) for i in range(repeats)]
    next_question = []
    while len(next_question) < repeats:
        # Each None stands in for the session's gr.State; half the slides are real tiles (the default).
        call("quiz_start", None, MAX_QUESTIONS, "mixed", keys, 50)
        for _ in range(min(MAX_QUESTIONS - 1, repeats - len(next_question))):
            call("quiz_answer", None, "adipose")
            next_question.append(call("quiz_next", None))
    return {"explore_switch": explore, "next_question": next_question}


def load_test(assets: str, users: int, questions: int, startup_timeout: float, think_s: float, seed: int) -> dict:
    """Latencies (s) of every quiz call by `users` simultaneous sessions, the errors, the wall time and the
    server's CPU seconds, which tell server cost apart from the clients' own (they share this machine)."""
    port = free_port()
    env = {**os.environ, "PATHGEN_ASSETS_DIR": assets, "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    launched = time.perf_counter()
    # Its own session puts the server in its own scheduling group (Linux autogroup), so the client threads share
    # the cores with it as one group instead of crowding it out thread by thread.
    server = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + startup_timeout
        while True:
            if server.poll() is not None:
                raise SystemExit(f"app.py exited during start-up:\n{server.stderr.read()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    startup = time.perf_counter() - launched
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"app.py did not serve {url} within {startup_timeout:.0f} s")
            time.sleep(0.5)

        latencies: list[float] = []
        per_endpoint: dict[str, list[float]] = {}
        errors: list[str] = []
        lock = threading.Lock()
        # Event latency only: a browser fetches the slide image separately, from gradio's file route.
        clients = [api_client(url, download_files=False) for _ in range(users)]
        barrier = threading.Barrier(users)

        def timed(client, *args, api_name: str) -> None:
            started = time.perf_counter()
            error = None
            try:
                client.predict(*args, api_name=api_name)
            except Exception as failure:  # counted and reported, so one failure does not end the run
                error = f"{api_name}: {type(failure).__name__}: {failure}"
            with lock:
                latencies.append(time.perf_counter() - started)
                per_endpoint.setdefault(api_name, []).append(latencies[-1])
                if error:
                    errors.append(error)

        def trainee(client, pauses: np.random.Generator) -> None:
            def think() -> None:
                time.sleep(think_s * pauses.uniform(0.5, 1.5))

            barrier.wait()
            timed(client, questions, "mixed", ["adipose", "mucus", "stroma"], api_name="/quiz_start")
            for question in range(questions):
                think()
                timed(client, "mucus", api_name="/quiz_answer")
                if question < questions - 1:
                    think()
                    timed(client, api_name="/quiz_next")

        seeds = np.random.SeedSequence(seed).spawn(users)
        threads = [threading.Thread(target=trainee, args=(client, np.random.default_rng(s)))
                   for client, s in zip(clients, seeds, strict=True)]
        server_cpu = cpu_seconds(server.pid)
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        if server_cpu is not None:
            server_cpu = cpu_seconds(server.pid) - server_cpu
        return {"latencies": latencies, "per_endpoint": per_endpoint, "errors": errors, "wall": wall,
                "server_cpu": server_cpu, "startup": startup}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(args: argparse.Namespace) -> dict:
    times = server_side_times(args.assets, args.repeats)
    load = load_test(args.assets, args.users, args.questions, args.startup_timeout, args.think_s, args.seed)
    latencies, errors = load["latencies"], load["errors"]
    results = {
        "startup_s": load["startup"],
        "explore_switch_ms": 1000 * statistics.median(times["explore_switch"]),
        "explore_switch_p95_ms": 1000 * float(np.percentile(times["explore_switch"], 95)),
        "next_question_ms": 1000 * statistics.median(times["next_question"]),
        "next_question_p95_ms": 1000 * float(np.percentile(times["next_question"], 95)),
        "quiz_p95_s": float(np.percentile(latencies, 95)),
        "quiz_median_s": statistics.median(latencies),
        "quiz_calls": len(latencies),
        "quiz_errors": len(errors),
        "quiz_wall_s": load["wall"],
        "server_cpu_ms_per_call": None if load["server_cpu"] is None else 1000 * load["server_cpu"] / len(latencies),
        "quiz_p95_s_per_endpoint": {name: float(np.percentile(values, 95))
                                    for name, values in sorted(load["per_endpoint"].items())},
    }
    print(f"Start-up, `python app.py` until it serves the page: {results['startup_s']:.1f} s "
          f"(target < {TARGETS['startup_s']:.0f} s, ratio {results['startup_s'] / TARGETS['startup_s']:.2f})")
    print(f"Explore tissue switch, server side: median {results['explore_switch_ms']:.1f} ms, "
          f"p95 {results['explore_switch_p95_ms']:.1f} ms (target < {TARGETS['explore_switch_ms']:.0f} ms, "
          f"ratio {results['explore_switch_ms'] / TARGETS['explore_switch_ms']:.2f})")
    print(f"Next quiz question, server side: median {results['next_question_ms']:.1f} ms, "
          f"p95 {results['next_question_p95_ms']:.1f} ms (target < {TARGETS['next_question_ms']:.0f} ms, "
          f"ratio {results['next_question_ms'] / TARGETS['next_question_ms']:.2f})")
    print(f"{args.users} concurrent quiz sessions, pausing {args.think_s:g} s on average between calls, "
          f"{results['quiz_calls']} calls in {load['wall']:.1f} s: "
          f"p95 {results['quiz_p95_s']:.3f} s, median {results['quiz_median_s']:.3f} s "
          f"(target p95 < {TARGETS['quiz_p95_s']:.0f} s, ratio {results['quiz_p95_s'] / TARGETS['quiz_p95_s']:.2f}); "
          f"errors {len(errors)}")
    if results["server_cpu_ms_per_call"] is not None:
        print(f"  server CPU per call {results['server_cpu_ms_per_call']:.1f} ms (the rest of the latency is queueing "
              "for CPU shared with the clients and anything else running)")
    print("  p95 per endpoint: " + ", ".join(f"{name} {value:.3f} s"
                                            for name, value in results["quiz_p95_s_per_endpoint"].items()))
    for error in errors[:5]:
        print(f"  {error}")
    if args.output:
        Path(args.output).write_text(json.dumps(results | {"users": args.users, "questions": args.questions, "think_s": args.think_s,
                                                            "errors_shown": errors[:5]}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main(parse_args())
