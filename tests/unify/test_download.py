"""``unify download`` against a local HTTP server on 127.0.0.1: resume, checksums, retries,
hostile archives, shared sources, ``--from`` and the bound on parallel downloads.

No test touches the internet: the server serves archives built here, and each test stops
it when it ends, pass or fail.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from unify import sources as sources_module
from unify.cli import main
from unify.converters import registry
from unify.download import STATE_FILE, WORK_DIR, DownloadOptions, download_sources
from unify.sources import (
    FEATURE_SOURCES,
    SOURCES,
    Member,
    Source,
    raw_paths,
    sources_for,
    tasks_of,
)
from unify.tasks import UNIVERSES, all_tasks

FAST = DownloadOptions(jobs=3, retries=3, backoff=0.01, timeout=5)


@dataclass
class Route:
    """What the server does for one path."""

    body: bytes
    cut_first: int = 0  # this many responses stop halfway and drop the connection
    fail_first: int = 0  # this many responses are 503
    slow_first: int = 0  # this many responses wait ``delay`` before any byte
    delay: float = 0.0
    pause: float = 0.0  # every response waits this long (to overlap downloads)
    honour_range: bool = True
    wrong_range: bool = False  # answer a range request with bytes from 0 as a 206
    served: int = 0


@dataclass
class Server:
    base: str
    routes: dict[str, Route]
    log: list[tuple[str, str | None]] = field(default_factory=list)
    active: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            with server.lock:
                server.log.append((name, self.headers.get("Range")))
                server.active += 1
                server.peak = max(server.peak, server.active)
                route = server.routes.get(name)
                n = route.served if route else 0
                if route:
                    route.served += 1
            # ``active`` counts requests until their answer starts: once the client has a
            # whole body it may send its next request before this thread runs again, so a
            # count held until the handler returns would see a bounded pool overlap itself.
            counted = [True]
            try:
                self._answer(route, n, counted)
            finally:
                if counted[0]:
                    with server.lock:
                        server.active -= 1

        def _answer(self, route: Route | None, n: int, counted: list[bool]) -> None:
            if route is None:
                self.send_error(404)
                return
            time.sleep(route.pause)
            if n < route.slow_first:
                time.sleep(route.delay)
            with server.lock:
                server.active -= 1
                counted[0] = False
            if n < route.fail_first:
                self.send_error(503)
                return
            body, start = route.body, 0
            wanted = self.headers.get("Range")
            if wanted and route.honour_range:
                start = 0 if route.wrong_range else int(wanted.removeprefix("bytes=").split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            rest = body[start:]
            if n < route.cut_first:
                self.wfile.write(rest[: len(rest) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(rest)

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("", {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = False  # server_close() joins every handler thread
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _targz(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def _file_source(server: Server, name: str, body: bytes, **route: object) -> Source:
    server.routes[name] = Route(body, **route)  # type: ignore[arg-type]
    return Source(name, "test page", server.url(name), "file", (Member("", f"t/{name}", "jsonl"),))


BODY = b"".join(b'{"line": %d}\n' % i for i in range(20000))  # ~270 KB


def _only_final_files(raw: Path) -> list[str]:
    """Every file under ``raw`` except the download work folder."""
    return sorted(
        p.relative_to(raw).as_posix()
        for p in raw.rglob("*")
        if p.is_file() and WORK_DIR not in p.relative_to(raw).parts
    )


# ------------------------------------------------------------------------------ fetching


def test_a_dropped_connection_resumes_with_range(server: Server, tmp_path: Path) -> None:
    source = _file_source(server, "a.jsonl", BODY, cut_first=2)
    (outcome,) = download_sources((source,), tmp_path, FAST)
    assert outcome.status == "fetched", outcome.detail
    assert (tmp_path / "t/a.jsonl").read_bytes() == BODY
    ranges = [r for name, r in server.log if name == "a.jsonl"]
    assert ranges[0] is None and len(ranges) == 3
    # Each retry asks only for what is missing, from where the last one stopped.
    first, second = (int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:])
    assert 0 < first < second < len(BODY)
    assert outcome.sha256 == hashlib.sha256(BODY).hexdigest()


def test_a_server_that_ignores_range_restarts_the_file(server: Server, tmp_path: Path) -> None:
    source = _file_source(server, "a.jsonl", BODY, cut_first=1, honour_range=False)
    (outcome,) = download_sources((source,), tmp_path, FAST)
    assert outcome.status == "fetched", outcome.detail
    assert (tmp_path / "t/a.jsonl").read_bytes() == BODY


def test_a_206_for_another_range_starts_over(server: Server, tmp_path: Path) -> None:
    source = _file_source(server, "a.jsonl", BODY, cut_first=1, wrong_range=True)
    (outcome,) = download_sources((source,), tmp_path, FAST)
    assert outcome.status == "fetched", outcome.detail
    assert (tmp_path / "t/a.jsonl").read_bytes() == BODY
    assert [r is None for _, r in server.log] == [True, False, True]


def test_a_failed_download_leaves_no_file_under_its_name_and_resumes_next_run(
    server: Server, tmp_path: Path
) -> None:
    source = _file_source(server, "a.jsonl", BODY, cut_first=1)
    (outcome,) = download_sources((source,), tmp_path, replace(FAST, retries=0))
    assert outcome.status == "failed"
    assert "gave up after 0 retries" in outcome.detail and "resumes" in outcome.detail
    assert _only_final_files(tmp_path) == []
    part = tmp_path / WORK_DIR / "a.jsonl.part"
    kept = part.stat().st_size
    assert 0 < kept < len(BODY)
    (again,) = download_sources((source,), tmp_path, FAST)
    assert again.status == "fetched"
    assert (tmp_path / "t/a.jsonl").read_bytes() == BODY
    assert server.log[-1] == ("a.jsonl", f"bytes={kept}-")
    assert not part.exists()


def test_a_sha256_mismatch_is_refused_and_the_download_removed(
    server: Server, tmp_path: Path
) -> None:
    good = _file_source(server, "a.jsonl", BODY)
    wrong = replace(good, sha256="0" * 64)
    (outcome,) = download_sources((wrong,), tmp_path, FAST)
    assert outcome.status == "failed"
    assert hashlib.sha256(BODY).hexdigest() in outcome.detail
    assert "the release has " + "0" * 64 in outcome.detail
    assert _only_final_files(tmp_path) == []
    assert not list((tmp_path / WORK_DIR).glob("*.part"))
    right = replace(good, sha256=hashlib.sha256(BODY).hexdigest(), size=len(BODY))
    (ok,) = download_sources((right,), tmp_path, FAST)
    assert ok.status == "fetched"


def test_server_errors_are_retried_with_backoff(server: Server, tmp_path: Path) -> None:
    source = _file_source(server, "a.jsonl", BODY, fail_first=2)
    options = replace(FAST, backoff=0.2)
    began = time.monotonic()
    (outcome,) = download_sources((source,), tmp_path, options)
    waited = time.monotonic() - began
    assert outcome.status == "fetched"
    assert len(server.log) == 3
    assert waited >= 0.2 + 0.4  # backoff, then twice the backoff


def test_retries_run_out(server: Server, tmp_path: Path) -> None:
    source = _file_source(server, "a.jsonl", BODY, fail_first=10)
    (outcome,) = download_sources((source,), tmp_path, replace(FAST, retries=2))
    assert outcome.status == "failed"
    assert "gave up after 2 retries (HTTP 503" in outcome.detail
    assert len(server.log) == 3


def test_a_404_is_not_retried(server: Server, tmp_path: Path) -> None:
    source = Source("gone", "p", server.url("gone.zip"), "zip", (Member("x", "t/x", "json"),))
    (outcome,) = download_sources((source,), tmp_path, FAST)
    assert outcome.status == "failed"
    assert "HTTP 404" in outcome.detail and "gone.zip" in outcome.detail
    assert len(server.log) == 1


def test_a_slow_server_times_out_and_is_retried(server: Server, tmp_path: Path) -> None:
    source = _file_source(server, "a.jsonl", BODY, slow_first=1, delay=1.5)
    (outcome,) = download_sources((source,), tmp_path, replace(FAST, timeout=0.3))
    assert outcome.status == "fetched", outcome.detail
    assert len(server.log) == 2


def test_parallel_downloads_are_bounded(server: Server, tmp_path: Path) -> None:
    sources = tuple(_file_source(server, f"f{i}.jsonl", BODY[:1000], pause=0.5) for i in range(6))
    outcomes = download_sources(sources, tmp_path, replace(FAST, jobs=2))
    assert [o.status for o in outcomes] == ["fetched"] * 6
    assert [o.source for o in outcomes] == [s.name for s in sources]
    assert server.peak == 2


def test_an_interrupt_stops_running_downloads_and_keeps_what_finished(
    server: Server, tmp_path: Path
) -> None:
    sources = tuple(_file_source(server, f"f{i}.jsonl", BODY, pause=0.3) for i in range(3))

    def interrupt(outcome: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_sources(sources, tmp_path, replace(FAST, jobs=1), report=interrupt)
    assert _only_final_files(tmp_path) == ["t/f0.jsonl"]
    assert len(server.log) <= 2  # the queued third one was never asked for
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert list(state["sources"]) == ["f0.jsonl"]


# ------------------------------------------------------------------------------ archives

MEMBER = b'{"ok": true}'


def _archive_source(server: Server, name: str, body: bytes, kind: str = "zip") -> Source:
    server.routes[name] = Route(body)
    return Source(
        name,
        "p",
        server.url(name),
        kind,
        (Member("data/x.json", "t/x.json", "json"),),  # type: ignore[arg-type]
    )


def test_only_declared_members_are_extracted(server: Server, tmp_path: Path) -> None:
    body = _zip({"data/x.json": MEMBER, "data/other.json": b"{}", "README": b"hi"})
    (outcome,) = download_sources((_archive_source(server, "a.zip", body),), tmp_path, FAST)
    assert outcome.status == "fetched"
    assert _only_final_files(tmp_path) == ["t/x.json"]
    assert (tmp_path / "t/x.json").read_bytes() == MEMBER
    assert outcome.files == {
        "t/x.json": {"size": len(MEMBER), "sha256": hashlib.sha256(MEMBER).hexdigest()}
    }
    assert not (tmp_path / WORK_DIR / "a.zip").exists()  # the archive is not kept


def test_a_tar_gz_source_is_extracted(server: Server, tmp_path: Path) -> None:
    body = _targz({"data/x.json": MEMBER, "data/y": b"y"})
    source = _archive_source(server, "a.tar.gz", body, kind="tar.gz")
    (outcome,) = download_sources((source,), tmp_path, FAST)
    assert outcome.status == "fetched", outcome.detail
    assert (tmp_path / "t/x.json").read_bytes() == MEMBER


@pytest.mark.parametrize(
    ("kind", "body", "entry"),
    [
        ("zip", _zip({"data/x.json": MEMBER, "../evil": b"x"}), "'../evil'"),
        ("zip", _zip({"data/x.json": MEMBER, "/abs/evil": b"x"}), "'/abs/evil'"),
        ("zip", _zip({"data/x.json": MEMBER}, {"data/link": "../../../etc/passwd"}), "data/link"),
        ("zip", _zip({"data/x.json": MEMBER}, {"data/link": "/etc/passwd"}), "data/link"),
        ("tar.gz", _targz({"data/x.json": MEMBER, "../evil": b"x"}), "'../evil'"),
        ("tar.gz", _targz({"data/x.json": MEMBER}, {"data/link": "/etc/passwd"}), "data/link"),
        ("tar.gz", _targz({"data/x.json": MEMBER}, {"data/link": "../../../x"}), "data/link"),
    ],
    ids=[
        "zip-dotdot",
        "zip-absolute",
        "zip-link-out",
        "zip-link-absolute",
        "tar-dotdot",
        "tar-link-absolute",
        "tar-link-out",
    ],
)
def test_a_hostile_archive_is_refused_whole(
    server: Server, tmp_path: Path, kind: str, body: bytes, entry: str
) -> None:
    raw = tmp_path / "raw"
    name = f"a.{kind}"
    (outcome,) = download_sources((_archive_source(server, name, body, kind),), raw, FAST)
    assert outcome.status == "failed"
    assert "refused" in outcome.detail and entry in outcome.detail, outcome.detail
    assert "nothing extracted" in outcome.detail
    assert _only_final_files(raw) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_a_link_inside_the_folder_is_allowed(server: Server, tmp_path: Path) -> None:
    body = _zip({"data/x.json": MEMBER}, {"data/alias": "x.json"})
    (outcome,) = download_sources((_archive_source(server, "a.zip", body),), tmp_path, FAST)
    assert outcome.status == "fetched", outcome.detail


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_truncated_archive_is_unreadable(server: Server, tmp_path: Path, kind: str) -> None:
    full = (
        _zip({"data/x.json": MEMBER * 1000})
        if kind == "zip"
        else _targz({"data/x.json": MEMBER * 1000})
    )
    source = _archive_source(server, f"a.{kind}", full[: len(full) // 2], kind)
    (outcome,) = download_sources((source,), tmp_path, FAST)
    assert outcome.status == "failed"
    assert "unreadable archive" in outcome.detail or "no entry" in outcome.detail
    assert _only_final_files(tmp_path) == []


def test_an_archive_bomb_is_refused(server: Server, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/x.json", b" " * (8 << 20))  # 8 MiB in about 8 KB
    source = _archive_source(server, "a.zip", buf.getvalue())
    (outcome,) = download_sources((source,), tmp_path, FAST)
    assert outcome.status == "failed"
    assert "refused: inflates to more than" in outcome.detail
    assert _only_final_files(tmp_path) == []
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))


def test_an_archive_without_the_declared_member_names_it(server: Server, tmp_path: Path) -> None:
    source = _archive_source(server, "a.zip", _zip({"data/renamed.json": MEMBER}))
    (outcome,) = download_sources((source,), tmp_path, FAST)
    assert outcome.status == "failed"
    assert "has no entry 'data/x.json'" in outcome.detail


# ----------------------------------------------------------------------- declared sources


def _pointed_at(server: Server, source: Source, body: bytes) -> Source:
    server.routes[source.filename] = Route(body)
    return replace(source, url=server.url(source.filename))


def test_two_tasks_sharing_a_source_fetch_it_once(
    server: Server, tmp_path: Path, tiny_raw: Path
) -> None:
    local = tuple(
        _pointed_at(
            server,
            s,
            _zip({m.inside: (tiny_raw / m.dest).read_bytes() for m in s.members}),
        )
        for s in SOURCES
        if s.name == "karpathy-captions"
    )
    tasks = tasks_of(local[0])
    assert len(tasks) == 2  # both retrieval tasks read caption_datasets.zip
    chosen = sources_for(tasks, sources=local)
    assert chosen == local
    outcomes = download_sources(chosen, tmp_path, FAST)
    assert [o.status for o in outcomes] == ["fetched"]
    assert len(server.log) == 1
    for m in local[0].members:
        assert (tmp_path / m.dest).read_bytes() == (tiny_raw / m.dest).read_bytes()
    # Both tasks' files are in place: a second run fetches nothing.
    assert [o.status for o in download_sources(chosen, tmp_path, FAST)] == ["present"]
    assert len(server.log) == 1


def test_every_required_raw_file_has_a_source() -> None:
    for spec in all_tasks().values():
        declared = {m.dest for s in SOURCES for m in s.members}
        for path, required in raw_paths(spec).items():
            folder = path.split("/")[0]
            if required and folder == spec.name:
                assert path in declared, f"{spec.name}: no source provides {path}"


def test_every_member_is_a_declared_raw_file_and_every_source_documented() -> None:
    known = {path for spec in all_tasks().values() for path in raw_paths(spec)}
    for source in SOURCES:
        assert source.page, source.name
        assert source.url or source.steps, f"{source.name}: no URL and no manual steps"
        if source.kind == "built":
            assert source.builder and source.parts and source.steps, source.name
        assert tasks_of(source), f"{source.name}: read by no task"
        for m in source.members:
            assert m.dest in known, f"{source.name}: {m.dest} is no converter's raw file"
    everything = [p for s in (*SOURCES, *FEATURE_SOURCES.values()) for p in (s, *s.parts)]
    names = [s.name for s in everything]
    assert len(names) == len(set(names))
    # Downloads share <raw>/.vl12/: two sources must not share a file name.
    files = [s.filename for s in everything if s.url]
    assert len(files) == len(set(files))


def test_the_tasks_of_a_source_follow_the_converters() -> None:
    """Derived from ``raw_files``: a converter's files decide which sources it needs."""
    for name, conv in registry().items():
        needed = sources_for((name,))
        provided = {m.dest for s in needed for m in s.members}
        for rf in conv.raw_files:
            if rf.required:
                assert f"{name}/{rf.name}" in provided
        assert all(name in tasks_of(s) for s in needed)


# ---------------------------------------------------------------------------------- CLI


def test_download_from_a_folder_of_hand_fetched_archives(tmp_path: Path, tiny_raw: Path) -> None:
    (v7w,) = (s for s in SOURCES if s.name == "visual7w-pointing")
    hand = tmp_path / "hand"
    hand.mkdir()
    member = v7w.members[0]
    original = (tiny_raw / member.dest).read_bytes()
    (hand / v7w.filename).write_bytes(_zip({member.inside: original}))
    raw = tmp_path / "raw"
    result = CliRunner().invoke(
        main, ["download", "visual7w", "--raw", str(raw), "--from", str(hand), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert (raw / member.dest).read_bytes() == original
    assert (hand / v7w.filename).exists()  # a hand-fetched archive is left where it is
    state = json.loads((raw / STATE_FILE).read_text())
    record = state["sources"][v7w.name]
    assert record["files"][member.dest]["sha256"] == hashlib.sha256(original).hexdigest()
    assert f"sha256 {record['archive']['sha256']}" in result.stderr
    # doctor checks the file against what was recorded.
    doctor = CliRunner().invoke(main, ["doctor", "visual7w", "--raw", str(raw), "--json"])
    assert doctor.exit_code == 0, doctor.output
    (report,) = json.loads(doctor.stdout)["files"]
    assert report["status"] == "ok" and report["reference"] == "the download record"


def test_a_manual_source_prints_its_steps_and_takes_from(tmp_path: Path) -> None:
    steps = ("Sign in at the page.", "Download x.json.")
    manual = Source(
        "signed",
        "https://example.org/page",
        None,
        "file",
        (Member("x.json", "t/x.json", "json"),),
        steps=steps,
    )
    (outcome,) = download_sources((manual,), tmp_path / "raw", FAST)
    assert outcome.status == "manual" and not outcome.ok
    assert outcome.detail == (
        "manual step (https://example.org/page):\n  1. Sign in at the page.\n  2. Download x.json."
    )
    hand = tmp_path / "hand"
    hand.mkdir()
    (hand / "x.json").write_bytes(MEMBER)
    (taken,) = download_sources((manual,), tmp_path / "raw", replace(FAST, from_dir=hand))
    assert taken.status == "from"
    assert (tmp_path / "raw/t/x.json").read_bytes() == MEMBER


# ------------------------------------------------------------------------------- SNLI-VE

(SNLI_VE,) = (s for s in SOURCES if s.name == "snli-ve")


def _records(path: Path) -> list[str]:
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in path.open())


def _snli_parts(tiny_raw: Path) -> dict[str, bytes]:
    """A tiny SNLI 1.0 and split lists from which the sample's SNLI-VE files follow,
    plus pairs the generator drops: gold "-", a Visual Genome pair, an unlisted image."""
    snli: list[dict] = []
    images: dict[str, list[str]] = {}
    for split in ("train", "dev", "test"):
        for line in (tiny_raw / f"snli_ve/snli_ve_{split}.jsonl").open():
            rec = json.loads(line)
            image = rec.pop("Flikr30kID").removesuffix(".jpg")
            images.setdefault(split, [])
            if image not in images[split]:
                images[split].append(image)
            snli.append(rec)
    first = snli[0]
    snli.insert(1, first | {"pairID": first["pairID"] + "x", "gold_label": "-"})
    snli.insert(2, first | {"pairID": "vg_123.jpg#0r1n"})
    snli.append(first | {"pairID": "99999999.jpg#0r1e", "captionID": "99999999.jpg#0"})
    thirds = len(snli) // 3
    files = {"train": snli[:thirds], "dev": snli[thirds : 2 * thirds], "test": snli[2 * thirds :]}
    archive = _zip(
        {
            f"snli_1.0/snli_1.0_{split}.jsonl": b"".join(
                json.dumps(r).encode() + b"\n" for r in recs
            )
            for split, recs in files.items()
        }
    )
    fillers = [f"filler{i}" for i in range(1000 - len(images["dev"]))]
    return {
        "snli_1.0.zip": archive,
        "flickr30k_train_val.lst": "\n".join(images["train"] + fillers + images["dev"]).encode(),
        "flickr30k_test.lst": "\n".join(images["test"]).encode() + b"\n",
    }


def _check_snli_ve(raw: Path, tiny_raw: Path) -> None:
    from unify.converters.base import BuildContext
    from unify.tasks import get

    for m in SNLI_VE.members:
        assert _records(raw / m.dest) == _records(tiny_raw / m.dest), m.dest
    table = get("snli_ve").make_converter().convert(BuildContext(raw, ("snli_ve",)))
    assert sum(s.num_examples for s in table.splits) == sum(
        len(_records(tiny_raw / m.dest)) for m in SNLI_VE.members
    )
    assert not (raw / WORK_DIR / "snli_ve").exists() or not any(
        (raw / WORK_DIR / "snli_ve").iterdir()
    )  # the parts are removed once it is built


def test_snli_ve_is_built_from_snli_and_the_split_lists(
    server: Server, tmp_path: Path, tiny_raw: Path
) -> None:
    parts = _snli_parts(tiny_raw)
    local = replace(
        SNLI_VE, parts=tuple(_pointed_at(server, p, parts[p.filename]) for p in SNLI_VE.parts)
    )
    (outcome,) = download_sources((local,), tmp_path, FAST)
    assert outcome.status == "built", outcome.detail
    assert sorted(outcome.files) == sorted(m.dest for m in SNLI_VE.members)
    _check_snli_ve(tmp_path, tiny_raw)
    assert len(server.log) == 3


def test_snli_ve_is_built_from_hand_fetched_parts(tmp_path: Path, tiny_raw: Path) -> None:
    hand = tmp_path / "hand"
    hand.mkdir()
    for name, data in _snli_parts(tiny_raw).items():
        (hand / name).write_bytes(data)
    raw = tmp_path / "raw"
    result = CliRunner().invoke(
        main, ["download", "snli_ve", "--raw", str(raw), "--from", str(hand), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "snli-ve: built from snli-1.0" in result.stderr
    _check_snli_ve(raw, tiny_raw)
    state = json.loads((raw / STATE_FILE).read_text())
    assert set(state["sources"]["snli-ve"]["files"]) == {m.dest for m in SNLI_VE.members}


def test_snli_ve_from_the_authors_own_output(tmp_path: Path, tiny_raw: Path) -> None:
    built = tmp_path / "built"
    built.mkdir()
    for f in (tiny_raw / "snli_ve").iterdir():
        (built / f.name).write_bytes(f.read_bytes())
    raw = tmp_path / "raw"
    result = CliRunner().invoke(
        main, ["download", "snli_ve", "--raw", str(raw), "--from", str(built), "-q"]
    )
    assert result.exit_code == 0, result.output
    for f in built.iterdir():
        assert (raw / "snli_ve" / f.name).read_bytes() == f.read_bytes()


def test_a_missing_part_says_what_to_do_instead(server: Server, tmp_path: Path) -> None:
    local = replace(
        SNLI_VE, parts=tuple(replace(p, url=server.url(p.filename)) for p in SNLI_VE.parts)
    )
    (outcome,) = download_sources((local,), tmp_path, FAST)
    assert outcome.status == "failed"
    assert "cannot build it: part snli-1.0" in outcome.detail and "HTTP 404" in outcome.detail
    assert "snli_ve_generator.py" in outcome.detail  # the steps follow
    assert _only_final_files(tmp_path) == []


def test_download_cli_fetches_and_shows_the_recorded_checksum(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = gzip.compress(b'{"id": 1}\n')
    (gw,) = (s for s in SOURCES if s.name == "guesswhat-train")
    local = _pointed_at(server, gw, body)
    monkeypatch.setattr(sources_module, "sources_for", lambda tasks, optional=False: (local,))
    raw = tmp_path / "raw"
    result = CliRunner().invoke(
        main, ["download", "guesswhat", "--raw", str(raw), "--backoff", "0", "-q"]
    )
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(body).hexdigest()
    assert f"{len(body)} bytes, sha256 {digest}" in result.stderr
    assert (raw / gw.members[0].dest).read_bytes() == body
    again = CliRunner().invoke(main, ["download", "guesswhat", "--raw", str(raw), "--json"])
    assert again.exit_code == 0, again.output
    (record,) = json.loads(again.stdout)
    assert (record["source"], record["status"]) == (gw.name, "present")


def test_download_cli_usage(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["download", "--raw", str(tmp_path)]).exit_code == 2
    both = runner.invoke(main, ["download", "vqa2", "--all", "--raw", str(tmp_path)])
    assert both.exit_code == 2
    assert runner.invoke(main, ["download", "nope", "--raw", str(tmp_path)]).exit_code == 2
    listed = runner.invoke(main, ["download", "--all", "--raw", str(tmp_path), "--list", "--json"])
    assert listed.exit_code == 0
    records = json.loads(listed.stdout)
    assert {t for r in records for t in r["tasks"]} == set(all_tasks())
    assert list(tmp_path.iterdir()) == []  # --list fetches nothing


def test_feature_sources_land_where_features_import_reads_them(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for universe, source in FEATURE_SOURCES.items():
        assert universe in UNIVERSES and source.page
        assert [m.dest for m in source.members] == [f"features/{universe}.tsv"]
    tsv = b"1\t640\t480\t0\t\t\n"
    coco = FEATURE_SOURCES["coco"]
    body = _zip({m.inside: tsv for m in coco.members})
    local = {"coco": _pointed_at(server, coco, body)}
    monkeypatch.setattr(sources_module, "FEATURE_SOURCES", local)
    raw = tmp_path / "raw"
    result = CliRunner().invoke(main, ["download", "--features", "coco", "--raw", str(raw), "-q"])
    assert result.exit_code == 0, result.output
    assert (raw / "features/coco.tsv").read_bytes() == tsv
    assert "1 of 1 sources in place" in result.stderr


def test_docs_cite_every_source() -> None:
    """docs/download.md holds every declared URL, page and destination."""
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "download.md").read_text()
    for source in (*SOURCES, *FEATURE_SOURCES.values()):
        for part in (source, *source.parts):
            assert part.url is None or part.url in text, part.url
        assert source.page in text, source.page
        for m in source.members:
            assert f"`{m.dest}`" in text, m.dest


def test_byte_progress_bars_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from unify.cli import _byte_progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)
    hook = _byte_progress(quiet=False)
    for done in (0, 4096, 8192):
        hook("vg-image-data", done, 8192)
    assert "vg-image-data" in err.getvalue() and "8.19k" in err.getvalue()
    quiet = _byte_progress(quiet=True)
    before = err.getvalue()
    quiet("x", 1, 2)
    assert err.getvalue() == before
