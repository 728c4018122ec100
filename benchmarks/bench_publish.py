"""What `unify publish` costs: the object copy and the full check of the copy.

    .venv/bin/python benchmarks/bench_publish.py PRIVATE [--out PUBLIC]

PRIVATE is a private build (``unify sample`` then ``unify build --all --raw OUT
--organiser OUT/organiser``); PUBLIC (default: next to PRIVATE, ``.public.h5``) is
written. Each measure runs in a fresh process:

- ``publish``: ``unify.publish.publish`` as the command runs it (copy, then ``unify verify``
  of the copy before it replaces PUBLIC);
- ``verify``: ``unify.verify.verify_file`` of the written copy alone, i.e. the share of
  ``publish`` spent checking;
- ``sizes``: PRIVATE and PUBLIC in bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import fresh_process, report

PUBLISH = """
from pathlib import Path
from unify.publish import publish
publish(Path({private!r}), Path({public!r}))
"""

VERIFY = """
from unify.verify import verify_file
assert verify_file({public!r}).ok
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("private", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    public = args.out or args.private.with_suffix(".public.h5")
    names = {"private": str(args.private), "public": str(public)}
    published = fresh_process(PUBLISH.format(**names))
    verified = fresh_process(VERIFY.format(**names))
    report(
        "publish",
        {
            "publish": published,
            "verify": verified,
            "sizes": {
                "private_bytes": args.private.stat().st_size,
                "public_bytes": public.stat().st_size,
            },
        },
    )


if __name__ == "__main__":
    main()
