"""The API's upload path alone: receive a multipart body (streamed into the data dir,
sha256 on the way), validate it in the process pool, commit, enqueue (in-memory broker).

No worker runs; the figure is the time a participant waits for 201/422. Two files:
``--mib`` MiB of JSON whitespace around an empty list (receive + hash + a full parse that
finds no prediction: 422) and the largest valid file of the tiny sample (201). The pool is
warm (one upload before timing). Served through Starlette's TestClient (no network), so the
figure is the server's own cost.

    python benchmarks/bench_api_upload.py --mib 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from fastapi.testclient import TestClient

from evalserver.app.main import make_app
from evalserver.benchmarks import load_benchmark
from evalserver.db.migrate import upgrade
from evalserver.db.session import make_engine, make_sessionmaker
from evalserver.metrics import load_groundtruth
from evalserver.metrics.chance import chance_submission
from evalserver.settings import Settings
from evalserver.teams import create_team
from unify import tasks

TASK = "vqa2"


def _build(root: Path) -> Path:
    from unify.build import BuildOptions, resolve_tasks, run_build
    from unify.sample.world import generate

    raw = root / "raw"
    generate(raw, scale="tiny", seed=0)
    out = root / "tiny.h5"
    run_build(raw, out, BuildOptions(tasks=resolve_tasks((TASK,), False)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100, help="Size of the big upload.")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        unified = _build(root)
        data = root / "data"
        settings = Settings(data_dir=data, broker_url="memory://", validation_processes=1)
        upgrade(settings.db_url)
        engine = make_engine(settings.db_url)
        with make_sessionmaker(engine)() as session:
            load_benchmark(session, data, unified, "tiny")
            token = create_team(session, "bench")[1]
        engine.dispose()
        valid = chance_submission(load_groundtruth(unified, TASK), seed=0)
        big = b"[" + b" " * (args.mib << 20) + b"]"
        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
        figures: dict[str, list[float]] = {"valid_tiny_s": [], f"whitespace_{args.mib}mib_s": []}
        try:
            with TestClient(make_app(settings, pool=pool)) as client:

                def post(content: bytes, seed: int) -> float:
                    started = time.perf_counter()
                    response = client.post(
                        "/api/v1/submissions",
                        headers={"Authorization": f"Bearer {token}"},
                        files={"file": (f"p{seed}.json", content)},
                        data={"task": TASK, "method_name": str(seed)},
                    )
                    elapsed = time.perf_counter() - started
                    if response.status_code not in (200, 201, 422):
                        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                    return elapsed

                post(valid, -1)  # warm: the pool process starts and loads the ground truth
                for i in range(args.repeat):
                    other = chance_submission(load_groundtruth(unified, TASK), seed=i + 1)
                    figures["valid_tiny_s"].append(post(other, i))
                    figures[f"whitespace_{args.mib}mib_s"].append(post(big, i))
        finally:
            pool.shutdown()
    summary = {
        "task": TASK,
        "phase": tasks.get(TASK).default_phase,
        "valid_bytes": len(valid),
        "big_bytes": len(big),
        **{name: round(min(values), 3) for name, values in figures.items()},
        "big_mib_per_s": round(args.mib / min(figures[f"whitespace_{args.mib}mib_s"]), 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
