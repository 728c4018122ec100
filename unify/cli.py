"""The ``unify`` command: list, build, info, leaks, verify, publish, features import, sample.

Exit codes: 0 ok; 1 data error (bad or missing raw input, a path that cannot be read or
written, an unreadable or damaged unified file); 2 usage error (bad options or task names,
an output that exists without ``--force``); 3 ``unify leaks`` found leaking examples. Every
error is one message naming the file (``unify.paths`` checks paths before any work), never
a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import click
from tqdm import tqdm

from unify.build import BuildOptions, resolve_hide, resolve_tasks, run_build
from unify.clitypes import TaskName, Vl12Group
from unify.converters import registry
from unify.errors import DataError
from unify.images import INTEGER_ID_UNIVERSES, KEY_OF_ID
from unify.leakage import LeakagePolicy
from unify.paths import input_dir, input_file, output_file
from unify.rawio import DEFAULT_LIMITS, ORJSON_MAX_DEPTH, RawLimits
from unify.reader import UnifiedFile, _plain
from unify.sources import FEATURE_SOURCES
from unify.tasks import UNIVERSES, all_tasks


def _progress_factory(quiet: bool) -> Any:
    disable = quiet or not sys.stderr.isatty()

    def progress(
        iterable: Iterable[Any], desc: str = "", total: int | None = None
    ) -> Iterable[Any]:
        if disable:
            return iterable
        return tqdm(
            iterable,
            desc=desc,
            total=total,
            file=sys.stderr,
            leave=False,
            unit=" rec",
            dynamic_ncols=True,
        )

    return progress


TASK_NAME = TaskName()


class _Existing(click.ParamType):
    """A path the command reads: checked while the options are parsed, before any work.

    A path that cannot be read is a data error (exit 1, raised as ``PathError``), not a
    usage error: the command line was well formed, the file system disagrees.
    """

    def __init__(self, what: str, folder: bool = False) -> None:
        self.what = what
        self.folder = folder
        self.name = "folder" if folder else "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        path = Path(value)
        return input_dir(path, self.what) if self.folder else input_file(path, self.what)


class ByteSize(click.ParamType):
    """A number of bytes, optionally with a K, M or G suffix (powers of 1024)."""

    name = "bytes"
    _UNITS = MappingProxyType({"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30})

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B")
        unit = text[-1:] if text[-1:] in ("K", "M", "G") else ""
        number = text[: len(text) - len(unit)]
        if not number.isdigit() or int(number) < 1:
            self.fail(f"{value!r} is not a positive number of bytes (e.g. 512M, 4G)", param, ctx)
        return int(number) * self._UNITS[unit]


RAW_FOLDER = _Existing("raw folder", folder=True)
UNIFIED_FILE = _Existing("unified file")


@click.group(cls=Vl12Group)
@click.version_option(package_name="vl12")
def main() -> None:
    """Unify the 12 vision-and-language datasets of 12-in-1 into one HDF5 file."""


@main.command("list")
@click.option("--raw", type=RAW_FOLDER, help="Raw folder to check for files (it must exist).")
def list_cmd(raw: Path | None) -> None:
    """Every dataset with the raw files it reads (and, with --raw, which are present)."""
    for conv in registry().values():
        click.echo(f"{conv.name}  ({conv.title}; {conv.spec.group}; metric {conv.spec.metric})")
        click.echo(f"  download: {conv.homepage}")
        click.echo(
            "  splits: "
            + ", ".join(
                f"{s.name} ({s.role}{', hidden' if s.name in conv.spec.hidden else ''})"
                for s in conv.splits
            )
        )
        for rf in conv.raw_files:
            need = "required" if rf.required else "optional"
            if raw is None:
                mark = "-"
            else:
                mark = (
                    "ok"
                    if conv.file(raw, rf.name).is_file()
                    else "MISSING"
                    if rf.required
                    else "absent"
                )
            where = f"{conv.name}/{rf.name}"
            click.echo(f"  [{mark:>7}] {where}  ({need}: {rf.description})")
        for rf in conv.organiser_files:
            click.echo(f"  [organiser] {conv.name}/{rf.name}  (--organiser DIR: {rf.description})")


@main.command()
@click.argument("names", nargs=-1, type=TASK_NAME, metavar="[NAMES]...")
@click.option("--all", "all_tasks", is_flag=True, help="Build every dataset (all must be present).")
@click.option(
    "--raw",
    required=True,
    type=RAW_FOLDER,
    help="Raw folder: <raw>/<task>/<files>.",
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Unified HDF5 file to write."
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option(
    "--max-examples",
    type=click.IntRange(min=1),
    default=None,
    help="Smoke mode: first N records of each raw file, in release order.",
)
@click.option(
    "--organiser",
    type=_Existing("organiser folder", folder=True),
    help="The organisers' answers of hidden splits: <organiser>/<task>/<files> (a private build).",
)
@click.option(
    "--hide",
    multiple=True,
    metavar="TASK:SPLIT",
    help="Hide this evaluation split too: its answers go only to the private build (repeatable).",
)
@click.option("--no-clean", is_flag=True, help="Keep raw splits (no leakage cleaning).")
@click.option(
    "--keep-train",
    multiple=True,
    type=TASK_NAME,
    metavar="TASK",
    help="Leakage policy: leave this task's training split uncleaned (repeatable).",
)
@click.option(
    "--ignore-eval",
    multiple=True,
    type=TASK_NAME,
    metavar="TASK",
    help="Leakage policy: do not clean against this task's evaluation images (repeatable).",
)
@click.option(
    "--max-depth",
    type=click.IntRange(1, ORJSON_MAX_DEPTH),
    default=DEFAULT_LIMITS.max_depth,
    show_default=True,
    help="Refuse JSON or a pickle nested deeper than this.",
)
@click.option(
    "--max-decompressed-bytes",
    type=ByteSize(),
    default="4G",
    show_default=True,
    help="Refuse a gzip file that inflates to more (K/M/G suffixes).",
)
@click.option(
    "--max-line-bytes",
    type=ByteSize(),
    default="64M",
    show_default=True,
    help="Refuse a JSON Lines file with a longer line (K/M/G suffixes).",
)
@click.option(
    "--max-pickle-expansion",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_LIMITS.max_pickle_expansion,
    show_default=True,
    help="Refuse a pickle whose shared references expand to more elements per byte.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no summary.")
def build(
    names: tuple[str, ...],
    all_tasks: bool,
    raw: Path,
    out: Path,
    force: bool,
    max_examples: int | None,
    organiser: Path | None,
    hide: tuple[str, ...],
    no_clean: bool,
    keep_train: tuple[str, ...],
    ignore_eval: tuple[str, ...],
    max_depth: int,
    max_decompressed_bytes: int,
    max_line_bytes: int,
    max_pickle_expansion: float,
    quiet: bool,
) -> None:
    """Convert NAMES (or --all) from their official raw files into one unified file."""
    if all_tasks == bool(names):
        raise click.UsageError("give task NAMES or --all (not both)")
    output_file(out, force)
    tasks = resolve_tasks(names, all_tasks)
    try:
        hidden = resolve_hide(hide, tasks)
    except DataError as exc:
        raise click.BadParameter(str(exc), param_hint="--hide") from None
    _check_raw_inputs(raw, tasks)
    policy = LeakagePolicy(keep_train=frozenset(keep_train), ignore_eval=frozenset(ignore_eval))
    limits = RawLimits(
        max_depth=max_depth,
        max_decompressed_bytes=max_decompressed_bytes,
        max_line_bytes=max_line_bytes,
        max_pickle_expansion=max_pickle_expansion,
    )
    options = BuildOptions(
        tasks=tasks,
        all=all_tasks,
        clean=not no_clean,
        max_examples=max_examples,
        policy=policy,
        limits=limits,
        hide=hidden,
        organiser=organiser,
    )
    result = run_build(raw, out, options, progress=_progress_factory(quiet))
    unanswered = [
        f"{task}/{split}"
        for task, splits in result.report.get("hidden", {}).items()
        for split, answers in splits.items()
        if answers != "present"
    ]
    if organiser is not None and unanswered:
        click.echo(
            f"warning: {organiser} has no answers for hidden split(s) {', '.join(unanswered)}: "
            "they cannot be scored from this build",
            err=True,
        )
    emptied = result.report.get("leakage", {}).get("emptied_training_splits", [])
    if emptied:
        click.echo(
            f"warning: leakage cleaning removed every example of {', '.join(emptied)} "
            "(see `unify leaks` and the file's /leakage report)",
            err=True,
        )
    if not quiet:
        with UnifiedFile(out) as uf:
            lines = build_summary(uf) + hidden_summary(uf)
        click.echo(f"wrote {out} in {result.seconds:.1f}s", err=True)
        for line in lines:
            click.echo(line, err=True)


def _check_raw_inputs(raw: Path, tasks: tuple[str, ...]) -> None:
    """Read a byte of every present raw file the build will read, before the slow parse.

    Missing required files are the build's own check (it lists all of them at once); this
    one catches a present file that cannot be read (a folder under a file's name, a
    broken mount), which would otherwise fail mid-build without naming the file.
    """
    from unify.converters.vgqa import image_data_path

    converters = registry()
    paths = [path for t in tasks for _, path, _ in converters[t].file_status(raw)]
    paths.append(image_data_path(raw))  # read for links whatever the tasks
    for path in paths:
        if os.path.lexists(path) and not path.is_dir():
            input_file(path, "raw file")


def hidden_summary(uf: UnifiedFile) -> list[str]:
    """The hidden splits of a built file and whether their answers are in it."""
    hidden = [
        f"{task}/{s} (answers {'present' if view.answers_present else 'absent'})"
        for task in uf.tasks
        for s in uf.splits(task)
        if (view := uf.split(task, s)).hidden
    ]
    return [f"hidden splits: {'; '.join(hidden)}"] if hidden else []


def build_summary(uf: UnifiedFile) -> list[str]:
    """What a built file holds per task and split, and what leakage cleaning moved.

    Read back from the file itself (splits and the stored /leakage report), never from the
    converters' counts, which are taken before cleaning moves examples to ``mteval``.
    """
    lines = ["examples per split in the file:"]
    for task in uf.tasks:
        sizes = ", ".join(f"{s} {uf.split(task, s).num_examples}" for s in uf.splits(task))
        lines.append(f"  {task}: {sizes}")
    leakage = uf.build_report.get("leakage", {})
    if not leakage.get("cleaned", False):
        lines.append(
            f"not cleaned (--no-clean): {leakage.get('leaking_training_examples', 0)} "
            "training examples touch evaluation images (see `unify leaks`)"
        )
        return lines
    removed = leakage.get("removed", {})
    moved = {t: sum(removed[t].values()) for t in uf.tasks if sum(removed.get(t, {}).values())}
    if moved:
        listing = ", ".join(f"{task} {n}" for task, n in moved.items())
        lines.append(f"leakage cleaning moved to mteval: {listing} (see `unify leaks`)")
    else:
        lines.append("leakage cleaning moved nothing (no training example on an evaluation image)")
    return lines


@main.command()
@click.argument("file", type=UNIFIED_FILE)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(file: Path, as_json: bool) -> None:
    """Schema version, build options, tasks, splits, vocabularies and sources of FILE."""
    with UnifiedFile(file, checksums=True) as uf:
        summary = describe(uf)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    click.echo(
        f"{file}: schema {summary['schema_version']}, vl12 {summary['vl12_version']}, "
        f"created {summary['created']}"
    )
    click.echo(f"fingerprint: {summary['fingerprint'] or 'none (built before fingerprints)'}")
    if summary["published_from"]:
        click.echo(
            f"public copy (unify publish) of the private build {summary['published_from']}: "
            "hidden splits have no answers"
        )
    opts = summary["build_options"]
    click.echo(
        f"build: tasks {', '.join(opts.get('tasks', []))}; clean {opts.get('clean')}; "
        f"max_examples {opts.get('max_examples')}"
    )
    click.echo(f"images: {summary['images']}; links: {summary['links']}")
    click.echo(f"{'task':<22}{'split':<14}{'role':<7}{'examples':>10}  answers")
    for task, t in summary["tasks"].items():
        for split, s in t["splits"].items():
            answers = "present" if s["answers_present"] else "absent"
            note = f"{answers} (hidden)" if s["hidden"] else answers
            click.echo(f"{task:<22}{split:<14}{s['role']:<7}{s['num_examples']:>10}  {note}")
    for name, v in summary["vocabularies"].items():
        click.echo(f"vocab {name}: {v['size']} answers (min count {v['min_count']})")
    for name, feat in summary["features"].items():
        click.echo(
            f"features {name}: {feat['images']} images, {feat['boxes']} regions, "
            f"dim {feat['dim']} ({feat['universe']})"
        )
    click.echo(f"sources: {len(summary['sources'])} raw files")
    for src in summary["sources"]:
        click.echo(f"  {src['path']}  {src['size']} bytes  sha256 {src['sha256'][:16]}…")


def describe(uf: UnifiedFile) -> dict[str, Any]:
    """A JSON-ready summary of a unified file (``unify info``)."""
    h5 = uf.h5
    tasks = {}
    for task in uf.tasks:
        splits = {}
        for split in uf.splits(task):
            view = uf.split(task, split).check()  # a damaged split is refused, not described
            splits[split] = {
                "role": view.role,
                "num_examples": view.num_examples,
                "hidden": view.hidden,
                "answers_present": view.answers_present,
            }
        tasks[task] = {"attrs": uf.task_attrs(task), "splits": splits}
    return {
        "schema_version": uf.schema_version,
        "vl12_version": str(h5.attrs.get("vl12_version", "")),
        "created": str(h5.attrs.get("created", "")),
        "fingerprint": uf.fingerprint,
        "published_from": uf.benchmark_fingerprint if uf.is_public_copy else None,
        "build_options": uf.build_options,
        "images": len(uf.image_keys),
        "links": len(h5["links"]["type"]),
        "tasks": tasks,
        "vocabularies": {
            name: {"size": len(h5["vocab"][name]), **uf.vocab_attrs(name)}
            for name in uf.vocab_names()
        },
        "sources": uf.sources,
        "build_report": uf.build_report,
        "features": {
            name: {
                "images": len(h5["features"][name]["image"]),
                "boxes": len(h5["features"][name]["boxes"]),
                **{
                    k: _plain(v)
                    for k, v in h5["features"][name].attrs.items()
                    if k in ("dim", "universe", "skipped_unknown_images")
                },
            }
            for name in uf.feature_names()
        },
    }


@main.command()
@click.argument("file", type=UNIFIED_FILE)
@click.option(
    "--against",
    type=_Existing("id list"),
    multiple=True,
    help="Bare integer image ids (.npy or one per line) to treat as evaluation images.",
)
@click.option(
    "--universe",
    type=click.Choice(INTEGER_ID_UNIVERSES),
    help="The universe of the --against ids (required with --against).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def leaks(file: Path, against: tuple[Path, ...], universe: str | None, as_json: bool) -> None:
    """Check FILE for training examples on evaluation images (exit 3 if any).

    Identity groups are recomputed from /images and /links, and roles from the splits,
    whatever options the file was built with.
    """
    from unify.leakage import check_file, read_id_list

    if against and universe is None:
        raise click.UsageError(f"--against needs --universe {'|'.join(INTEGER_ID_UNIVERSES)}")
    sets = []
    if universe is not None:
        to_key = KEY_OF_ID[universe]
        sets = [(f"against:{p.name}", [to_key(str(i)) for i in read_id_list(p)]) for p in against]
    with UnifiedFile(file, checksums=True) as uf:
        result = check_file(uf, sets)
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
    else:
        click.echo(
            f"{file}: {result['identity_groups']} identity groups; evaluation images "
            f"{result['evaluation_images']}; links joined "
            + (
                ", ".join(f"{k} {v}" for k, v in result["keys_joined_by_link_type"].items())
                or "nothing"
            )
        )
        if result["pairs"]:
            click.echo(
                f"{'training split':<28}{'evaluation task':<26}{'images':>8}"
                f"{'examples':>10}  link types"
            )
            for p in result["pairs"]:
                click.echo(
                    f"{p['train_task'] + '/' + p['train_split']:<28}{p['eval_task']:<26}"
                    f"{p['images']:>8}{p['examples']:>10}  {', '.join(p['link_types'])}"
                )
        if result["hidden_evaluation_splits"]:
            click.echo(
                "hidden splits, evaluation splits like the others (their images count "
                f"whether or not their answers are in the file): "
                f"{', '.join(result['hidden_evaluation_splits'])}"
            )
        verdict = (
            "no training example touches an evaluation image"
            if not result["leaking_training_examples"]
            else f"{result['leaking_training_examples']} training examples touch evaluation images"
        )
        click.echo(verdict)
    if result["leaking_training_examples"]:
        sys.exit(3)


@main.command()
@click.argument("file", type=UNIFIED_FILE)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify(file: Path, as_json: bool) -> None:
    """Check FILE completely: structure, value ranges and every dataset's checksum.

    Exit 0 when FILE is sound, 1 when it is damaged (every problem listed, one per line).
    """
    from unify.verify import verify_file

    report = verify_file(file)
    if as_json:
        click.echo(json.dumps(report.as_record(), indent=2, sort_keys=True))
    else:
        for problem in report.problems:
            click.echo(problem.line(file))
        sums = {
            "match": "every checksum matches",
            "absent": "no checksums to compare (built before checksums)",
            "damaged": "checksums do not match",
        }[report.checksums]
        verdict = "ok" if report.ok else f"damaged, {len(report.problems)} problem(s)"
        click.echo(
            f"{file}: {verdict}: schema {report.schema_version or '?'}, "
            f"{report.datasets} datasets; {sums}"
        )
    if not report.ok:
        sys.exit(1)


@main.command()
@click.argument("private", type=UNIFIED_FILE)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Public copy to write."
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def publish(private: Path, out: Path, force: bool) -> None:
    """Copy PRIVATE without the answers of its hidden splits, for participants.

    Everything else (questions, ids, images, features, vocabularies, leakage report) is
    copied unchanged; the copy records PRIVATE's fingerprint.
    """
    from unify.publish import publish as publish_file

    if out.resolve() == private.resolve():
        raise click.UsageError(f"--out {out} is PRIVATE itself: write the copy elsewhere")
    output_file(out, force)
    report = publish_file(private, out)
    click.echo(
        f"wrote {out}: public copy of {private} (fingerprint {report.published_from[:12]}; "
        f"its own {report.fingerprint[:12]})",
        err=True,
    )
    if not report.withheld:
        click.echo("no hidden split: nothing withheld", err=True)
    for split, columns in report.withheld.items():
        what = ", ".join(columns) if columns else "nothing (the private build had no answers)"
        click.echo(f"  {split}: withheld {what}", err=True)


@main.group()
def features() -> None:
    """Region features of the images of a unified file."""


@features.command("import")
@click.argument("file", type=UNIFIED_FILE)
@click.argument("tsv", nargs=-1, required=True, type=_Existing("feature file"))
@click.option("--name", required=True, help="Feature set name, e.g. bottomup_coco.")
@click.option(
    "--universe",
    required=True,
    type=click.Choice(list(UNIVERSES)),
    help="How to read the TSV's image_id as an image key.",
)
@click.option("--force", is_flag=True, help="Replace a feature set of the same name.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def features_import(
    file: Path, tsv: tuple[Path, ...], name: str, universe: str, force: bool, quiet: bool
) -> None:
    """Import bottom-up-attention TSV files into FILE as /features/NAME (atomically)."""
    from unify.features import import_features

    # FILE is rewritten (a copy replaces it): its folder must take a new file, and an
    # existing feature set of that name is replaced only with --force (a usage error).
    output_file(file, force=True, what="unified file")
    with UnifiedFile(file, checksums=True) as uf:
        _ = uf.image_keys  # checked (sorted, unique, checksum): features attach by key
        if name in uf.feature_names() and not force:
            raise click.UsageError(f"{file}: features {name!r} exist; use --force to replace them")
    report = import_features(
        file, list(tsv), name, universe, force=force, progress=_progress_factory(quiet)
    )
    click.echo(
        f"imported {report.images} images, {report.boxes} boxes (dim {report.dim}) "
        f"as {name}; skipped {report.skipped_unknown} images not in {file.name}"
        + (f" (e.g. {', '.join(report.skipped_examples[:5])})" if report.skipped_unknown else "")
        + (f"; {report.duplicates} duplicate rows ignored" if report.duplicates else ""),
        err=True,
    )


@main.command()
@click.argument("names", nargs=-1, type=TASK_NAME, metavar="[NAMES]...")
@click.option("--all", "all_tasks", is_flag=True, help="Every task's sources.")
@click.option(
    "--raw",
    required=True,
    type=click.Path(path_type=Path),
    help="Raw folder to fill (created if missing): <raw>/<task>/<files>.",
)
@click.option(
    "--from",
    "from_dir",
    type=_Existing("--from folder", folder=True),
    help="Folder of archives fetched by hand (by their download file names).",
)
@click.option("--optional", is_flag=True, help="Also fetch the sources of optional files.")
@click.option(
    "--features",
    multiple=True,
    type=click.Choice(list(FEATURE_SOURCES)),
    help="Also fetch the region features of this universe (repeatable).",
)
@click.option(
    "--jobs", type=click.IntRange(1, 8), default=3, show_default=True, help="Parallel downloads."
)
@click.option(
    "--retries", type=click.IntRange(min=0), default=5, show_default=True, help="Per download."
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds before the first retry (doubled each time).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds without data before a connection counts as dropped.",
)
@click.option("--list", "list_only", is_flag=True, help="List the sources; fetch nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def download(
    names: tuple[str, ...],
    all_tasks: bool,
    raw: Path,
    from_dir: Path | None,
    optional: bool,
    features: tuple[str, ...],
    jobs: int,
    retries: int,
    backoff: float,
    timeout: float,
    list_only: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Fetch, verify and extract the official raw files of NAMES (or --all) into --raw.

    Each source is fetched once however many tasks read it; a source whose files are all
    in place is skipped. Exit 1 when a source failed or needs a manual step.
    """
    from unify import sources
    from unify.download import STATE_FILE, DownloadOptions, Outcome, download_sources
    from unify.paths import output_dir

    if all_tasks and names:
        raise click.UsageError("give task NAMES or --all (not both)")
    if not (all_tasks or names or features):
        raise click.UsageError("give task NAMES, --all or --features")
    tasks = resolve_tasks(names, all_tasks) if names or all_tasks else ()
    chosen = sources.sources_for(tasks, optional=optional) + tuple(
        sources.FEATURE_SOURCES[u] for u in dict.fromkeys(features)
    )
    if list_only:
        records = [sources.describe(s) for s in chosen]
        if as_json:
            click.echo(json.dumps(records, indent=2))
            return
        for r in records:
            where = r["url"] or "manual step"
            click.echo(f"{r['name']}  ({', '.join(r['tasks'])})  {where}")
            click.echo(f"  documented at {r['page']}")
            for m in r["members"]:
                click.echo(f"  -> {m['dest']}")
        return
    output_dir(raw, force=True, what="raw folder")
    options = DownloadOptions(
        jobs=jobs, retries=retries, backoff=backoff, timeout=timeout, from_dir=from_dir
    )

    def report(o: Outcome) -> None:
        if as_json:
            return
        if o.status in ("fetched", "from", "built"):
            files = ", ".join(o.files)
            click.echo(f"{o.source}: {o.status} {o.detail} -> {files}", err=True)
            if o.sha256:
                click.echo(f"  {o.size} bytes, sha256 {o.sha256}", err=True)
        elif o.status == "present":
            click.echo(f"{o.source}: {o.detail}", err=True)
        elif o.status == "manual":
            click.echo(f"{o.source}: needs a {o.detail}", err=True)
        else:
            click.echo(f"error: {o.source}: {o.detail}", err=True)

    try:
        outcomes = download_sources(
            chosen, raw, options, progress=_byte_progress(quiet or as_json), report=report
        )
    except KeyboardInterrupt:
        click.echo(
            "interrupted: finished sources are in place and recorded; "
            "partial downloads resume on the next run",
            err=True,
        )
        sys.exit(130)
    if as_json:
        click.echo(json.dumps([vars(o) for o in outcomes], indent=2))
    else:
        ok = sum(o.ok for o in outcomes)
        click.echo(
            f"{ok} of {len(outcomes)} sources in place under {raw}; "
            f"checksums recorded in {raw / STATE_FILE}",
            err=True,
        )
    if not all(o.ok for o in outcomes):
        sys.exit(1)


def _byte_progress(quiet: bool) -> Any:
    """A progress hook with one byte bar per download (off when stderr is no terminal)."""
    import threading

    if quiet or not sys.stderr.isatty():
        return lambda name, done, total: None
    bars: dict[str, Any] = {}
    lock = threading.Lock()

    def hook(name: str, done: int, total: int | None) -> None:
        with lock:
            bar = bars.get(name)
            if bar is None:
                bar = bars[name] = tqdm(
                    desc=name, total=total, unit="B", unit_scale=True, file=sys.stderr,
                    leave=False, position=len(bars), dynamic_ncols=True,
                )
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)
            if total is not None and done >= total:
                bar.close()

    return hook


@main.command()
@click.argument("names", nargs=-1, type=TASK_NAME, metavar="[NAMES]...")
@click.option("--raw", required=True, type=RAW_FOLDER, help="Raw folder: <raw>/<task>/<files>.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--strict", is_flag=True, help="A checksum that differs is an error too.")
@click.option(
    "--max-depth",
    type=click.IntRange(1, ORJSON_MAX_DEPTH),
    default=DEFAULT_LIMITS.max_depth,
    show_default=True,
    help="As `unify build --max-depth`.",
)
@click.option(
    "--max-decompressed-bytes",
    type=ByteSize(),
    default="4G",
    show_default=True,
    help="As `unify build --max-decompressed-bytes`.",
)
@click.option(
    "--max-line-bytes",
    type=ByteSize(),
    default="64M",
    show_default=True,
    help="As `unify build --max-line-bytes`.",
)
@click.option(
    "--max-pickle-expansion",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_LIMITS.max_pickle_expansion,
    show_default=True,
    help="As `unify build --max-pickle-expansion`.",
)
def doctor(
    names: tuple[str, ...],
    raw: Path,
    as_json: bool,
    strict: bool,
    max_depth: int,
    max_decompressed_bytes: int,
    max_line_bytes: int,
    max_pickle_expansion: float,
) -> None:
    """Read every raw file of NAMES (all tasks by default) through and say how to fix each
    problem.

    Exit 1 when a required file is missing or any present file is unreadable; a readable
    file whose checksum differs from its reference is a warning (an error with --strict).
    Files are read with the build's limits (the same options), so what passes here parses
    in a build run with the same options.
    """
    from unify.doctor import as_records, diagnose, exit_code

    tasks = resolve_tasks(names, not names)
    limits = RawLimits(
        max_depth=max_depth,
        max_decompressed_bytes=max_decompressed_bytes,
        max_line_bytes=max_line_bytes,
        max_pickle_expansion=max_pickle_expansion,
    )
    reports = diagnose(raw, tasks, limits=limits)
    code = exit_code(reports, strict)
    if as_json:
        click.echo(json.dumps({"ok": code == 0, "files": as_records(reports)}, indent=2))
        sys.exit(code)
    marks = {"ok": "ok", "missing": "MISSING", "absent": "absent", "unreadable": "UNREADABLE"}
    for r in reports:
        mark = marks.get(r.status, "DIFFERS" if strict else "differs")
        need = "required" if r.required else "optional"
        line = f"[{mark:>10}] {r.path}  ({need})"
        if r.status in ("ok", "differs"):
            line += f"  {r.size} bytes, sha256 {r.sha256}"
            line += f", checked against {r.reference}" if r.reference else ", no known checksum"
        click.echo(line)
        if r.detail:
            click.echo(f"             {r.detail}")
        if r.fix and r.status != "ok":
            click.echo(f"             fix: {r.fix}")
    errors = sum(r.is_error for r in reports)
    differ = sum(r.status == "differs" for r in reports)
    click.echo(
        f"{raw}: {len(tasks)} tasks, {len(reports)} files: {errors} errors, "
        f"{differ} checksum differences ({'errors' if strict else 'warnings'})"
    )
    sys.exit(code)


@main.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Raw folder to write.")
@click.option("--force", is_flag=True, help="Write over the files of a non-empty --out.")
@click.option(
    "--scale",
    type=click.Choice(["tiny", "small", "full"]),
    default="tiny",
    show_default=True,
    help="tiny: seconds; small: tens of thousands; full: real sizes.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the world.")
@click.option(
    "--feature-dim",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Dimension of the region features in features/<universe>.tsv.",
)
@click.option("--no-features", is_flag=True, help="Skip the region-feature TSVs.")
def sample(
    out: Path, scale: str, seed: int, feature_dim: int, no_features: bool, force: bool
) -> None:
    """Write every task's dataset in its official raw format from one generated world.

    A non-empty OUT needs --force. The same seed gives byte-identical files. Then:
    `unify build --all --raw OUT ...` and
    `unify features import FILE OUT/features/<universe>.tsv --universe <universe> ...`.
    """
    from unify.sample import generate
    from unify.sample.world import unsampled_tasks

    files = generate(
        out,
        scale=scale,
        seed=seed,
        feature_dim=feature_dim,
        features=not no_features,
        force=force,
    )
    click.echo(f"wrote {len(files)} raw files under {out}", err=True)
    if skipped := unsampled_tasks():
        names = ", ".join(skipped)
        click.echo(f"not written (their TaskSpec names no sample generator): {names}", err=True)


if __name__ == "__main__":
    main()


@main.command("tasks")
@click.option("--markdown", is_flag=True, help="Print docs/tasks.md (generated from the specs).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tasks_cmd(markdown: bool, as_json: bool) -> None:
    """Every task's declaration: group, splits, phases, metric and leaderboard columns."""
    from unify.taskdoc import render_markdown, spec_record

    if markdown and as_json:
        raise click.UsageError("--markdown and --json exclude each other")
    if markdown:
        click.echo(render_markdown(), nl=False)
        return
    records = [spec_record(spec) for spec in all_tasks().values()]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for r in records:
        phases = ", ".join(f"{p['name']} ({'+'.join(p['splits'])})" for p in r["phases"])
        click.echo(f"{r['name']}  ({r['title']}; {r['group']}; metric {r['metric']})")
        click.echo(f"  phases: {phases}; default {r['default_phase']}; select on {r['val_split']}")
        click.echo(
            f"  primary: {r['primary']}; columns: {', '.join(c['name'] for c in r['columns'])}"
        )
