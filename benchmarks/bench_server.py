"""The evaluation server under load, in real processes (figures: docs/benchmarks.md).

``embedded``: the default stack (``evalserver serve``: SQLite + kombu's SQLAlchemy
transport), warm worker; seconds from the start of an upload to "scored", for a vqa2
submission of a full-scale phase (default: every vqa2 phase of the file that has answers).

``throughput``: a private PostgreSQL and a private Redis, ``evalserver api``, N workers and
the sweeper; ``--uploads`` NLVR2 dev submissions (the full-scale dev split: 6,982 rows)
sent by a few client threads; submissions scored per second and p50/p99 latency from the
start of each upload to its ``finished_at``. The load generator shares the same cores.

Inputs: ``.bench-cache/server/full.h5``, a full-scale sample of vqa2 and nlvr2
(``unify sample --scale full`` then ``unify build vqa2 nlvr2``; built by ``--prepare``).

    python benchmarks/bench_server.py --prepare
    python benchmarks/bench_server.py embedded --repeat 5 [--extra-board trainval]
    python benchmarks/bench_server.py throughput --uploads 1000 --workers 2 [--resamples 0]
    VL12_BENCH_CODE=/path/to/old/checkout python benchmarks/bench_server.py throughput ...
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import CACHE, report  # noqa: E402

FULL = CACHE / "server" / "full.h5"


def prepare() -> None:
    from unify import tasks
    from unify.build import BuildOptions, resolve_tasks, run_build
    from unify.sample.world import generate

    out = CACHE / "server"
    raw = out / "raw"
    if not raw.exists():
        generate(raw, scale="full", seed=0, features=False,
                 tasks=[tasks.get("vqa2"), tasks.get("nlvr2")])
    if not FULL.exists():
        options: dict[str, Any] = {"tasks": resolve_tasks(("vqa2", "nlvr2"), False)}
        organiser = raw / "organiser"
        if organiser.exists() and "organiser" in {f.name for f in fields(BuildOptions)}:
            # A private build (hidden splits with the organisers' answers), where the
            # sample writes them: vqa2 test-dev and test can then be timed.
            options["organiser"] = organiser
        run_build(raw, FULL, BuildOptions(**options))


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VL12_")}
    # VL12_BENCH_CODE: run the server from another checkout (an A/B against an older
    # commit, e.g. a git worktree); this script and its inputs stay the same.
    env["PYTHONPATH"] = os.environ.get("VL12_BENCH_CODE", str(ROOT))
    env["VL12_DATA_DIR"] = str(data_dir)
    return env | extra


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "evalserver.cli", *args], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"evalserver {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout


@contextmanager
def _process(env: dict[str, str], *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "evalserver.cli", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _perfect_vqa(gt: Any) -> tuple[Any, list[str]]:
    """The most frequent human answer of each question (a valid, full-size submission)."""
    offsets, answers = gt.answer_offsets, gt.answers
    best = []
    for i in range(len(offsets) - 1):
        values, counts = np.unique(answers[offsets[i] : offsets[i + 1]], return_counts=True)
        best.append(str(values[int(np.argmax(counts))]))
    return gt.question_ids, best


def _upload(client: httpx.Client, token: str, task: str, phase: str, content: bytes) -> dict:
    response = client.post(
        "/api/v1/submissions", headers={"Authorization": f"Bearer {token}"},
        data={"task": task, "phase": phase, "method_name": "bench"},
        files={"file": ("predictions.json", content, "application/octet-stream")},
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"upload refused: {response.status_code} {response.text[:500]}")
    return response.json()


def _board_of_split(data_dir: Path, task: str, split: str) -> None:
    """A leaderboard on one split that no TaskSpec phase names (a benchmark-only board:
    vqa2's answered val questions, 657,804 in the full-scale sample, as an upper bound for
    the hidden test-dev and test phases when the file holds no organiser answers)."""
    from sqlalchemy.orm import Session

    from evalserver.db.models import BenchmarkPhase, BenchmarkVersion
    from evalserver.db.session import make_engine

    engine = make_engine(f"sqlite:///{data_dir / 'vl12.db'}")
    with Session(engine) as session:
        bench = session.query(BenchmarkVersion).one()
        session.add(BenchmarkPhase(benchmark_id=bench.id, task=task, phase=split,
                                   splits=[split], hidden=False))
        session.commit()
    engine.dispose()


def embedded(repeat: int, phases: list[str] | None, extra_boards: list[str],
             source: Path = FULL) -> None:
    from evalserver.metrics import SCORERS, load_groundtruth
    from tests.evalserver.services import free_port, wait_for_port
    from unify import tasks
    from unify.reader import UnifiedFile

    spec = tasks.get("vqa2")
    with UnifiedFile(source) as uf:
        available = set(uf.splits("vqa2"))
    if phases is None:
        phases = [p.name for p in spec.phases if set(p.splits) <= available]
    figures: dict[str, Any] = {"stack": "evalserver serve (SQLite + SQLAlchemy transport)"}
    with tempfile.TemporaryDirectory(prefix="vl12-bench-", dir=CACHE) as tmp:
        data_dir = Path(tmp) / "data"
        env = _env(data_dir)
        _cli(env, "db", "upgrade")
        _cli(env, "load", str(source), "--name", "full")
        token = _cli(env, "team", "create", "bench").strip()
        for split in extra_boards:
            _board_of_split(data_dir, "vqa2", split)
            phases.append(split)
        port = free_port()
        with _process(env, "serve", "--port", str(port), log=Path(tmp) / "serve.log"):
            wait_for_port(port, timeout=120)
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
            for phase in phases:
                try:
                    gt = load_groundtruth(source, "vqa2", phase)
                except Exception as exc:  # a phase without answers in this file
                    figures[phase] = f"skipped: {exc}"
                    continue
                ids, best = _perfect_vqa(gt)
                write = SCORERS[gt.metric].write
                timings = []
                for attempt in range(repeat + 1):  # the first warms the worker's cache
                    answers = list(best)
                    answers[attempt % len(answers)] = f"variant {attempt}"  # a new file
                    content = write(ids, answers)
                    started = time.perf_counter()
                    row = _upload(client, token, "vqa2", phase, content)
                    uploaded = time.perf_counter()
                    while row["status"] not in ("scored", "failed"):
                        time.sleep(0.05)
                        row = client.get(f"/api/v1/submissions/{row['id']}",
                                         headers={"Authorization": f"Bearer {token}"}).json()
                    if row["status"] != "scored":
                        raise RuntimeError(f"not scored: {row['error']}")
                    done = time.perf_counter()
                    if attempt:
                        timings.append((done - started, uploaded - started))
                figures[phase] = {
                    "questions": len(ids),
                    "file_mb": round(len(content) / 2**20, 1),
                    "upload_to_scored_s": [round(t, 2) for t, _ in timings],
                    "median_s": round(statistics.median(t for t, _ in timings), 2),
                    "upload_and_validation_median_s": round(
                        statistics.median(u for _, u in timings), 2),
                }
    report("server-embedded", figures)


def throughput(uploads: int, workers: int, threads: int, resamples: int | None = None) -> None:
    from sqlalchemy import select

    from evalserver.db.models import Submission
    from evalserver.db.session import make_engine
    from evalserver.metrics import load_groundtruth
    from evalserver.metrics.chance import chance_submission
    from tests.evalserver.services import free_port, private_postgres, private_redis, wait_for_port

    gt = load_groundtruth(FULL, "nlvr2", "dev")
    contents = [chance_submission(gt, seed=i) for i in range(uploads)]
    with tempfile.TemporaryDirectory(prefix="vl12-bench-", dir=CACHE) as tmp, \
            private_postgres() as pg, private_redis() as redis:
        data_dir = Path(tmp) / "data"
        # Quotas on (high enough that none refuses: they are checked, twice, per upload).
        env = _env(data_dir, VL12_DATABASE_URL=pg.url, VL12_BROKER_URL=redis.url,
                   VL12_QUEUED_DEADLINE_S="600", VL12_RUNNING_DEADLINE_S="600",
                   VL12_QUOTA_PER_DAY=str(uploads + 1), VL12_QUOTA_TOTAL=str(uploads + 1),
                   VL12_MAX_CONCURRENT=str(uploads + 1))
        if resamples is not None:  # 0: no statistics after scoring (isolates their cost)
            env["VL12_BOOTSTRAP_RESAMPLES"] = str(resamples)
        _cli(env, "db", "upgrade")
        _cli(env, "load", str(FULL), "--name", "full")
        tokens = [_cli(env, "team", "create", f"team-{i}").strip() for i in range(10)]
        port = free_port()
        logs = Path(tmp)
        with ExitStack() as stack:
            stack.enter_context(_process(env, "api", "--port", str(port), log=logs / "api.log"))
            stack.enter_context(_process(env, "sweeper", log=logs / "sweeper.log"))
            for i in range(workers):
                stack.enter_context(_process(env, "worker", log=logs / f"worker-{i}.log"))
            wait_for_port(port, timeout=120)
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
            warm = _upload(client, tokens[0], "nlvr2", "dev", chance_submission(gt, seed=uploads))
            while client.get(f"/api/v1/submissions/{warm['id']}", headers={
                    "Authorization": f"Bearer {tokens[0]}"}).json()["status"] != "scored":
                time.sleep(0.2)  # a worker is up and warm (ground truth cached)
            starts: dict[str, float] = {}
            lock = threading.Lock()

            def one(i: int) -> None:
                started = time.time()
                row = _upload(client, tokens[i % len(tokens)], "nlvr2", "dev", contents[i])
                with lock:
                    starts[row["id"]] = started

            cpu0 = _tree_cpu_s(os.getpid())
            own0 = os.times()
            t0 = time.time()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, range(uploads)))
            uploaded = time.time()
            engine = make_engine(pg.url)
            ids = list(starts)
            while True:
                with engine.connect() as conn:
                    rows = conn.execute(
                        select(Submission.id, Submission.status, Submission.finished_at,
                               Submission.attempts).where(Submission.id.in_(ids))
                    ).all()
                if all(r.status in ("scored", "failed") for r in rows):
                    break
                time.sleep(0.2)
            cpu = _cpu_ms(cpu0, _tree_cpu_s(os.getpid()), uploads)
            own = os.times()
            client_ms = 1000 * (own.user + own.system - own0.user - own0.system) / uploads
            engine.dispose()
    finished = {r.id: _aware(r.finished_at).timestamp() for r in rows}
    latencies = sorted(finished[i] - starts[i] for i in ids)
    last = max(finished.values())
    report("server-throughput", {
        "stack": f"PostgreSQL + Redis, {workers} workers, evalserver api, sweeper",
        "bootstrap_resamples": "server default" if resamples is None else resamples,
        "uploads": uploads,
        "client_threads": threads,
        "rows_per_submission": len(gt.identifiers),
        "scored": sum(r.status == "scored" for r in rows),
        "max_attempts_seen": max(r.attempts for r in rows),
        "uploads_per_s": round(uploads / (uploaded - t0), 1),
        "scored_per_s": round(uploads / (last - t0), 1),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 2),
        "latency_p99_s": round(float(np.percentile(latencies, 99)), 2),
        "server_cpu_ms_per_submission": round(sum(cpu.values()), 1),
        "server_cpu_ms_by_role": cpu,
        "load_generator_cpu_ms_per_submission": round(client_ms, 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "started": datetime.fromtimestamp(t0, UTC).isoformat(timespec="seconds"),
    })


def _tree_cpu_s(root: int) -> dict[str, float]:
    """CPU seconds (user + system, reaped children included) of every process below
    ``root``, ``root`` itself excluded (it is the load generator), by role: the API, its
    validation processes, the workers (with their pools), the sweeper, PostgreSQL, Redis.
    Unlike submissions per second on a shared machine, this hardly depends on what else
    runs, so it is the figure to compare between two versions of the server."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields_ = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        pid = int(entry.name)
        parent[pid] = int(fields_[1])
        cpu[pid] = sum(int(v) for v in fields_[11:15])  # utime stime cutime cstime

    def role(pid: int) -> str | None:
        chain = [pid]
        while chain[-1] > 1 and parent.get(chain[-1], 0) != root:
            chain.append(parent.get(chain[-1], 0))
        if chain[-1] <= 1:
            return None  # not below root
        try:
            command = (Path("/proc") / str(chain[-1]) / "cmdline").read_bytes()
        except OSError:
            return "other"
        for word, name in ((b"evalserver.cli\0api", "api"), (b"worker", "workers"),
                           (b"sweeper", "sweeper"), (b"postgres", "postgresql"),
                           (b"redis", "redis")):
            if word in command:
                return "validation" if name == "api" and len(chain) > 1 else name
        return "other"

    by_role: dict[str, float] = {}
    for pid, ticks in cpu.items():
        name = role(pid) if pid != root else None
        if name is not None:
            by_role[name] = by_role.get(name, 0.0) + ticks / tick
    return by_role


def _cpu_ms(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    roles = sorted(set(before) | set(after))
    spent = {r: after.get(r, 0.0) - before.get(r, 0.0) for r in roles}
    return {r: round(1000 * s / n, 1) for r, s in spent.items()}


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=["embedded", "throughput"])
    parser.add_argument("--prepare", action="store_true", help="build the full-scale input")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--file", type=Path, default=None,
                        help="embedded: another unified file (e.g. a private build)")
    parser.add_argument("--phase", action="append", default=None)
    parser.add_argument("--extra-board", action="append", default=None,
                        help="also measure a benchmark-only vqa2 board on this split")
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--resamples", type=int, default=None,
                        help="throughput: VL12_BOOTSTRAP_RESAMPLES (0: no statistics)")
    args = parser.parse_args()
    if args.file is None and (args.prepare or not FULL.exists()):
        prepare()
    if args.mode == "embedded":
        embedded(args.repeat, args.phase, args.extra_board or [], args.file or FULL)
    elif args.mode == "throughput":
        throughput(args.uploads, args.workers, args.threads, args.resamples)


if __name__ == "__main__":
    main()
