"""The leaderboard pages and their statistics (figures: docs/benchmarks.md).

``render``: the tiny sample loaded as a benchmark, 1,000 scored submissions spread over its
boards (each with stored statistics), then every page fetched ``--repeat`` times through
the app in process (FastAPI's TestClient: the server's rendering plus a negligible
in-process transport); the median milliseconds per page.

``bootstrap``: the 95% interval of a vqa2-sized phase (107,000 questions) with 1,000
shared resamples, in a fresh process: seconds and peak RSS.

    python benchmarks/bench_pages.py render --submissions 1000
    python benchmarks/bench_pages.py bootstrap --examples 107000 --resamples 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import fresh_process, report  # noqa: E402


def render(n_submissions: int, repeat: int) -> None:
    from fastapi.testclient import TestClient

    from evalserver.app.main import make_app
    from evalserver.benchmarks import load_benchmark
    from evalserver.db.migrate import upgrade
    from evalserver.db.models import BenchmarkVersion, Status, Submission, Team
    from evalserver.db.session import make_engine, make_sessionmaker
    from evalserver.settings import Settings
    from unify import tasks
    from unify.build import BuildOptions, resolve_tasks, run_build
    from unify.sample.world import generate

    with tempfile.TemporaryDirectory() as tmp:
        raw, h5, data = Path(tmp) / "raw", Path(tmp) / "tiny.h5", Path(tmp) / "data"
        generate(raw, scale="tiny", seed=0)
        run_build(raw, h5, BuildOptions(tasks=resolve_tasks((), True), all=True))
        data.mkdir()
        url = f"sqlite:///{data / 'vl12.db'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            load_benchmark(session, data, h5, "tiny")
            bench = session.query(BenchmarkVersion).one()
            boards = [(p.task, p.phase) for p in bench.phases
                      if p.phase == tasks.get(p.task).default_phase]
            teams = [Team(name=f"team-{i}", token_hash=f"{i:064x}") for i in range(50)]
            session.add_all(teams)
            session.flush()
            start = datetime(2026, 1, 1, tzinfo=UTC)
            for i in range(n_submissions):
                task, phase = boards[i % len(boards)]
                spec = tasks.get(task)
                value = 30.0 + (i * 7919 % 5000) / 100
                session.add(Submission(
                    id=f"{i:032x}", team_id=teams[i % len(teams)].id, benchmark_id=bench.id,
                    task=task, phase=phase, file_path="x", file_sha256=f"{i:064x}",
                    file_size=1, method_name=f"method-{i % 7}", status=Status.scored,
                    created_at=start + timedelta(seconds=i),
                    result={"metrics": {spec.primary: value}, "primary": spec.primary,
                            "details": {"per_type": {"a": value}},
                            "stats": {"half_width": 0.3, "low": value - 0.3,
                                      "high": value + 0.3, "p_value": 0.04,
                                      "leakage": {"seen": value + 1, "unseen": value - 1,
                                                  "n_seen": 100, "n_unseen": 200}}},
                ))
            session.commit()
        engine.dispose()
        settings = Settings(data_dir=data, database_url=url, broker_url="memory://")
        first_task = boards[0][0]
        pages = {
            "home": "/",
            "benchmark": "/b/tiny/1",
            "benchmark sorted by a task": f"/b/tiny/1?sort={first_task}&dir=asc",
            "task": f"/b/tiny/1/{first_task}",
            "task with breakdown": f"/b/tiny/1/{first_task}?breakdown=true",
            "export json": "/b/tiny/1/export/json",
        }
        figures: dict[str, object] = {"submissions": n_submissions, "boards": len(boards)}
        with TestClient(make_app(settings)) as client:
            for name, path in pages.items():
                client.get(path)  # warm (templates compiled)
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                figures[f"{name} ms (median)"] = round(statistics.median(times), 1)
                figures[f"{name} KB"] = round(len(response.content) / 1024, 1)
        report("pages render", figures)


def bootstrap(examples: int, resamples: int) -> None:
    body = f"""
import numpy as np
from evalserver.stats import board_seed, bootstrap, design_for, interval
scores = (np.random.default_rng(0).random({examples}) < 0.7).astype(float)
design = design_for({examples})
found = interval(bootstrap([scores], design, board_seed("f", "vqa2", "test-dev"),
                           {resamples})[:, 0])
"""
    baseline = fresh_process("import numpy as np\nimport evalserver.stats")
    measured = fresh_process(body)
    report("bootstrap", {
        "examples": examples,
        "resamples": resamples,
        "seconds (incl. imports)": round(measured["seconds"], 2),
        "seconds (imports alone)": round(baseline["seconds"], 2),
        "peak RSS MB": round(measured["peak_rss_bytes"] / 2**20, 1),
        "peak RSS MB of the imports alone": round(baseline["peak_rss_bytes"] / 2**20, 1),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("render")
    r.add_argument("--submissions", type=int, default=1000)
    r.add_argument("--repeat", type=int, default=20)
    b = sub.add_parser("bootstrap")
    b.add_argument("--examples", type=int, default=107_000)
    b.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    if args.what == "render":
        render(args.submissions, args.repeat)
    else:
        bootstrap(args.examples, args.resamples)


if __name__ == "__main__":
    main()
