"""Writers of the official raw formats, and the generated sample world that uses them.

Each writer is the inverse of its converter: plain records in, the release's file(s) out,
byte-compatible in layout (key names, nesting, header blocks). Tests round-trip
writer -> converter; the sample world and the benchmarks produce raw trees through them.
Each task's sample generator sits next to its writer, named by ``TaskSpec.sample``;
``world.py`` holds only what the tasks share.
"""

from __future__ import annotations

from pathlib import Path


def generate(
    out: Path,
    scale: str = "tiny",
    seed: int = 0,
    feature_dim: int = 32,
    features: bool = True,
    force: bool = False,
) -> list[Path]:
    """Write the sample world's raw folders under ``out``; a non-empty ``out`` needs ``force``.

    The entry point for users (``unify sample``): a folder that already holds files may be
    someone's downloads, so writing over it must be asked for. ``force`` replaces the files
    of the sample and leaves every other file as it is. Tests and benchmarks that write
    into fresh folders call ``unify.sample.world.generate`` directly.
    """
    from unify.doctor import write_manifest
    from unify.paths import output_dir
    from unify.sample.world import generate as write_world

    output_dir(Path(out), force=force, what="sample folder")
    files = write_world(
        Path(out), scale=scale, seed=seed, feature_dim=feature_dim, features=features
    )
    # Its own checksums, which ``unify doctor`` verifies instead of the releases' ones.
    write_manifest(Path(out), files)
    return files
