"""``evalserver demo``: the README's main job. A private build (with its organiser answers)
becomes a served leaderboard holding two real entries: the reference baseline of a short
multi-task run (marked as a baseline) and a chance-level entry.

Steps, each done only when needed, so running the command again adds nothing twice:

1. the data dir's database is created or upgraded; the file is loaded as a benchmark (the
   same fingerprint again is the same version);
2. the demo team is made once; its token is kept in ``<data dir>/demo/team.token`` (0600)
   and reused while it authenticates (a lost or revoked one is rotated);
3. ``baseline train --time-budget`` runs into the run folder, unless the folder holds a run
   this command finished on this benchmark (``demo-run.json`` records it; a run folder
   that is not the demo's is never overwritten);
4. for every (entry, task) with a leaderboard of the task's default phase and no live
   submission of the team under that method name there, ``baseline predict`` writes the
   file (``--phase test``: each task's default phase, the leaderboard's) and the file is
   uploaded through the HTTP API by the real client, once ``serve``'s API answers;
5. the baseline's rows are marked as baselines (an admin action, in the audit log); the
   command waits until every entry is scored with its statistics, prints the leaderboard's
   URL, and serves until Ctrl-C or SIGTERM.

torch is never imported here: the baseline runs as ``python -m baselines.cli`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evalserver.db.models import BenchmarkVersion, Status, Submission, Team
from evalserver.settings import Settings
from unify import tasks

__all__ = ["DEMO_TEAM", "ENTRIES", "RUN_RECORD", "TOKEN_FILE", "Demo", "DemoError", "Entry"]

#: The team the demo submits as.
DEMO_TEAM = "demo"
#: Where the demo team's token is kept, under the data dir.
TOKEN_FILE = Path("demo") / "team.token"
#: The demo's record of the run it trained, in the run folder.
RUN_RECORD = "demo-run.json"
#: ``baseline train`` writes this in a run folder (``baselines.train.CHECKPOINT``; not
#: imported: that module imports torch).
CHECKPOINT = "checkpoint.pt"
#: The TrainConfig fields the demo sets (``baseline train --config``), in the run folder.
TRAIN_CONFIG = "demo-train-config.json"
#: Longest wait for the entries' scores (two entries per task, one worker).
SCORE_TIMEOUT_S = 900.0


class DemoError(Exception):
    """A step of the demo that cannot go on (the message names what and where)."""


@dataclass(frozen=True)
class Entry:
    """One method the demo puts on the leaderboard."""

    method: str
    #: ``baseline predict --model``.
    model: str
    baseline: bool
    description: str


ENTRIES = (
    Entry("reference baseline (demo run)", "trained", True,
          "The reference multi-task baseline (baselines/), trained for a short time budget "
          "by `evalserver demo` on this benchmark's training splits."),
    Entry("chance", "chance", False,
          "Chance level: `baseline predict --model chance` (the TaskSpec's chance model)."),
)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only, atomically (temp then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Demo:
    unified: Path
    settings: Settings
    run_dir: Path
    name: str
    time_budget: str
    host: str = "127.0.0.1"
    port: int = 8000
    say: Callable[[str], None] = _say
    #: Set by ``prepare``.
    bench: BenchmarkVersion | None = None
    token: str | None = None
    #: (task, phase) of every leaderboard the entries go to.
    boards: list[tuple[str, str]] = field(default_factory=list)

    # ----------------------------------------------------------------- database side
    def _sessions(self) -> Any:
        from evalserver.db.session import make_engine, make_sessionmaker

        engine = make_engine(self.settings.db_url)
        return engine, make_sessionmaker(engine)

    def prepare(self) -> None:
        """Database, benchmark, team: everything ``serve`` then serves."""
        from evalserver.benchmarks import BenchmarkError, load_benchmark
        from evalserver.db.migrate import upgrade
        from evalserver.storage import StorageError, make_storage

        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        upgrade(self.settings.db_url)
        engine, sessions = self._sessions()
        try:
            with sessions() as session:
                try:
                    outcome = load_benchmark(session, self.settings.data_dir, self.unified,
                                             self.name, make_storage(self.settings))
                except (BenchmarkError, StorageError) as exc:
                    raise DemoError(str(exc)) from None
                bench = outcome.benchmark
                state = "loaded" if outcome.created else "already loaded"
                self.say(f"{self.unified}: {state} as benchmark {bench.name} version "
                         f"{bench.version}")
                if bench.name != self.name:
                    self.say(f"  (this build was loaded before under the name {bench.name!r})")
                have = {(p.task, p.phase) for p in bench.phases}
                self.boards = []
                for task in tasks.task_names():
                    phase = tasks.get(task).default_phase
                    if (task, phase) in have:
                        self.boards.append((task, phase))
                    elif any(p.task == task for p in bench.phases):
                        self.say(f"  {task}: no leaderboard of its default phase {phase} "
                                 "(its answers are not in the file): no entry there")
                if not self.boards:
                    raise DemoError(f"{self.unified}: no task has a leaderboard of its default "
                                    "phase: build with --organiser to include hidden answers")
                self.bench = bench
                self.token = self._team_token(session)
        finally:
            engine.dispose()

    def _team_token(self, session: Session) -> str:
        """The demo team's token: the kept one while it works, else a new one (kept)."""
        from evalserver import audit
        from evalserver.teams import authenticate, create_team, rotate_token

        path = Path(self.settings.data_dir) / TOKEN_FILE
        if path.exists():
            kept = path.read_text(encoding="utf-8").strip()
            found = authenticate(session, kept) if kept else None
            if found is not None and found.name == DEMO_TEAM:
                self.say(f"team {DEMO_TEAM!r}: its token is in {path}")
                return kept
        team = session.scalars(select(Team).where(Team.name == DEMO_TEAM)).first()
        if team is None:
            team, token = create_team(session, DEMO_TEAM)
            what = "created"
        else:  # the kept token is lost or no longer works: a new one
            audit.record(session, audit.cli_actor(), "rotate token", team_id=team.id,
                         was_revoked=team.revoked_at is not None, by="evalserver demo")
            token = rotate_token(session, team)
            what = "given a new token"
        write_private(path, token + "\n")
        self.say(f"team {DEMO_TEAM!r} {what}; its token is in {path} (sign in with it)")
        return token

    def present(self) -> dict[tuple[str, str, str], tuple[str, Status]]:
        """The demo team's live submissions on this benchmark version (queued, running or
        scored), as (method, task, phase) -> (id, status): those are not submitted again."""
        assert self.bench is not None
        engine, sessions = self._sessions()
        try:
            with sessions() as session:
                rows = session.execute(
                    select(Submission.method_name, Submission.task, Submission.phase,
                           Submission.id, Submission.status)
                    .join(Team, Team.id == Submission.team_id)
                    .where(Team.name == DEMO_TEAM, Submission.benchmark_id == self.bench.id,
                           Submission.status.in_((Status.queued, Status.running,
                                                  Status.scored)))
                )
                return {(m, t, p): (i, st) for m, t, p, i, st in rows}
        finally:
            engine.dispose()

    def mark_baselines(self, ids: list[str]) -> None:
        """Mark these submissions as baselines (the admin's action, recorded in the audit
        log like `PATCH /submissions/ID` of the admin), unless they are already."""
        from evalserver import audit

        engine, sessions = self._sessions()
        try:
            with sessions() as session:
                for sid in ids:
                    row = session.get(Submission, sid)
                    if row is None or row.is_baseline:
                        continue
                    audit.record(session, audit.cli_actor(), "mark baseline", submission_id=sid,
                                 team_id=row.team_id, baseline=True, was=False,
                                 by="evalserver demo")
                    row.is_baseline = True
                session.commit()
        finally:
            engine.dispose()

    # ----------------------------------------------------------------- the baseline
    def _baseline(self, *args: str) -> str:
        """``baseline ARGS`` in a child Python (torch stays out of this process); its
        stdout; its progress and messages go to stderr as they come."""
        argv = [sys.executable, "-m", "baselines.cli", *args]
        self.say("$ baseline " + " ".join(args))
        done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            raise DemoError(f"`baseline {args[0]}` failed (exit {done.returncode}); "
                            "its message is above")
        return done.stdout

    def train(self) -> None:
        """A short multi-task run, unless the run folder holds one this command finished on
        this benchmark."""
        assert self.bench is not None
        record_path = self.run_dir / RUN_RECORD
        record: dict[str, Any] = {}
        if record_path.exists():
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DemoError(f"{record_path}: unreadable ({exc}): remove it") from None
        elif (self.run_dir / CHECKPOINT).exists():
            raise DemoError(f"{self.run_dir}: holds a run `evalserver demo` did not start "
                            f"(no {RUN_RECORD}); choose another --run or remove it")
        finished = (record.get("state") == "finished"
                    and record.get("benchmark_fingerprint") == self.bench.fingerprint
                    and (self.run_dir / CHECKPOINT).exists())
        if finished:
            self.say(f"{self.run_dir}: holds the demo's finished run on this benchmark "
                     f"({record.get('summary', {}).get('steps')} steps): not trained again")
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = {"state": "training", "benchmark_fingerprint": self.bench.fingerprint,
                   "time_budget": self.time_budget, "unified": str(self.unified)}
        write_json(record_path, started)
        # No validation passes: they would cost about as much as the training itself on two
        # cores, and the leaderboard scores the run anyway.
        config = self.run_dir / TRAIN_CONFIG
        write_json(config, {"validate": False})
        self.say(f"training the reference baseline for {self.time_budget} (all tasks)")
        out = self._baseline("train", "--data", str(self.unified), "--out", str(self.run_dir),
                             "--time-budget", self.time_budget, "--config", str(config))
        try:  # its last line is the run's summary
            summary = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            summary = {}
        write_json(record_path, started | {"state": "finished", "summary": summary})

    def predictions(self, entry: Entry, wanted: list[str]) -> dict[str, Path]:
        """The prediction file of each task of ``wanted`` for ``entry``, by task."""
        from evalserver.prediction_files import task_phase_of

        out = self.run_dir / "predictions" / entry.model
        args = ["predict", "--model", entry.model, "--data", str(self.unified), "--phase",
                "test", "--tasks", ",".join(wanted), "--out", str(out)]
        if entry.model == "trained":
            args += ["--run", str(self.run_dir)]
        self._baseline(*args)
        files: dict[str, Path] = {}
        for path in sorted(out.iterdir()):
            if path.name.startswith("."):
                continue
            task, phase = task_phase_of(str(path))
            if task in wanted and phase == tasks.get(task).default_phase:
                files[task] = path
        lacking = [t for t in wanted if t not in files]
        if lacking:
            raise DemoError(f"{out}: `baseline predict` wrote no file for {', '.join(lacking)}")
        return files

    # ----------------------------------------------------------------- the server side
    def submit(self, files: dict[Entry, dict[str, Path]], earlier: list[str],
               stop: threading.Event, serving: Any) -> None:
        """``serve``'s ``on_ready``: upload ``files`` through the API, mark the baseline's
        rows, wait for the scores (also of ``earlier`` submissions not final yet), print
        the leaderboard's URL."""
        from evalserver.client import Client

        assert self.bench is not None and self.token is not None
        client = Client(serving.url, self.token)
        ids: dict[Entry, list[str]] = {e: [] for e in ENTRIES}
        for entry, by_task in files.items():
            for task, path in by_task.items():
                row = self._submit_one(client, entry, task, path, stop)
                if row is None:
                    return
                ids[entry].append(row["id"])
                note = " (the same file was submitted before)" if row.get("duplicate") else ""
                self.say(f"submitted {path.name} as {entry.method!r}: {row['id']}{note}")
        self.mark_baselines([i for e in ENTRIES if e.baseline for i in ids[e]]
                            + self._unmarked_baselines())
        waiting = [i for e in ENTRIES for i in ids[e]] + earlier
        if waiting:
            self.say(f"waiting for {len(waiting)} submission(s) to be scored")
            self._wait(client, waiting, stop, serving)
        if stop.is_set():
            return
        url = f"{serving.url}/b/{self.bench.name}/{self.bench.version}"
        print(f"leaderboard: {url}  (Ctrl-C stops the server)", flush=True)

    def _submit_one(self, client: Any, entry: Entry, task: str, path: Path,
                    stop: threading.Event) -> dict[str, Any] | None:
        """One upload; None when a signal came first. A team at the server's limit of
        submissions at once (429, VL12_MAX_CONCURRENT) waits for the worker and sends it
        again; any other refusal is a DemoError with the server's whole report."""
        from evalserver.client import ApiError

        assert self.bench is not None
        deadline = time.monotonic() + SCORE_TIMEOUT_S
        waited = False
        while not stop.is_set():
            try:
                return client.submit(path, task, tasks.get(task).default_phase, entry.method,
                                     entry.description, progress=False,
                                     benchmark=self.bench.name)
            except ApiError as exc:
                if exc.status == 429 and time.monotonic() < deadline:
                    if not waited:
                        self.say(f"{exc}: waiting")
                        waited = True
                    stop.wait(2.0)
                    continue
                report = exc.report if isinstance(exc.report, dict) else {}
                lines = [f"{path}: refused by the server: {exc}"]
                lines += [f"  {p.get('text') or p.get('message')}"
                          for p in report.get("problems", [])]
                raise DemoError("\n".join(lines)) from None
        return None

    def _unmarked_baselines(self) -> list[str]:
        """The baseline entry's earlier rows (a run stopped before marking them)."""
        assert self.bench is not None
        methods = [e.method for e in ENTRIES if e.baseline]
        engine, sessions = self._sessions()
        try:
            with sessions() as session:
                return list(session.scalars(
                    select(Submission.id)
                    .join(Team, Team.id == Submission.team_id)
                    .where(Team.name == DEMO_TEAM, Submission.benchmark_id == self.bench.id,
                           Submission.method_name.in_(methods),
                           Submission.is_baseline.is_(False))
                ))
        finally:
            engine.dispose()

    def _wait(self, client: Any, ids: list[str], stop: threading.Event, serving: Any) -> None:
        """Until every submission is final, and a scored one has its statistics (unless
        the server computes none); stops early on a signal; DemoError when the server's
        processes end or the wait is too long."""
        statistics = self.settings.bootstrap_resamples > 0
        pending = set(ids)
        deadline = time.monotonic() + SCORE_TIMEOUT_S
        failed: list[str] = []
        while pending and not stop.is_set():
            for sid in sorted(pending):
                row = client.get(sid)
                status = row["status"]
                if status not in ("scored", "failed", "cancelled"):
                    continue
                if status == "scored" and statistics and "stats" not in (row["result"] or {}):
                    continue
                pending.discard(sid)
                if status != "scored":
                    failed.append(f"{row['task']} {row['method_name']!r}: {status}: "
                                  f"{row.get('error') or ''}".rstrip(": "))
            if not pending:
                break
            dead = serving.dead()
            if dead:
                raise DemoError("the server stopped: " + ", ".join(c.name for c in dead)
                                + " ended (its log is above)")
            if time.monotonic() > deadline:
                raise DemoError(f"{len(pending)} submission(s) not scored after "
                                f"{SCORE_TIMEOUT_S:g} s")
            stop.wait(1.0)
        for line in failed:
            self.say(f"not scored: {line}")

    # ----------------------------------------------------------------- all of it
    def run(self) -> int:
        """Prepare, train and predict what is missing, then serve (submitting once the API
        answers) until a signal. A signal before serving raises KeyboardInterrupt (the
        baseline's process is killed with it)."""
        from evalserver.serve import Serve, _cannot_bind

        serving = Serve(self.settings, host=self.host, port=self.port)
        problem = _cannot_bind(self.host, self.port)
        if problem is not None:  # said before minutes of training, not after
            raise DemoError(f"cannot serve on {serving.url}: {problem} (choose another --port)")
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.prepare()
            present = self.present()
            wanted = {e: [t for t, p in self.boards if (e.method, t, p) not in present]
                      for e in ENTRIES}
            files: dict[Entry, dict[str, Path]] = {}
            for entry in ENTRIES:
                if not wanted[entry]:
                    self.say(f"{entry.method!r}: on every leaderboard already")
                    continue
                if entry.model == "trained":
                    self.train()
                files[entry] = self.predictions(entry, wanted[entry])
        finally:
            signal.signal(signal.SIGTERM, previous)
        earlier = [i for i, status in present.values() if not status.final]
        return serving.run(on_ready=lambda stop: self.submit(files, earlier, stop, serving))


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)
