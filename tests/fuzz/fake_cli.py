"""A command that misbehaves on request: the fuzz oracle's own tests run it to check that
each bad outcome is recognised (``fake act BEHAVIOUR FILE``)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click


@click.group()
def main() -> None:
    """Misbehave on request."""


@main.command()
@click.argument("behaviour")
@click.argument("file")
def act(behaviour: str, file: str) -> None:
    """Do BEHAVIOUR with FILE."""
    if behaviour == "ok":
        click.echo(f"read {file}")
    elif behaviour == "clean":
        click.echo(f"error: {file}: record 3: field 'id': missing", err=True)
        sys.exit(1)
    elif behaviour == "nameless":
        click.echo("error: something is wrong", err=True)
        sys.exit(1)
    elif behaviour == "long":
        click.echo(f"error: {file}: bad value {'x' * 5000}", err=True)
        sys.exit(1)
    elif behaviour == "usage":
        raise click.UsageError("no such option")
    elif behaviour == "raise":
        raise KeyError("boom")
    elif behaviour == "memory":
        hog = [bytearray(1 << 28) for _ in range(64)]  # 16 GiB
        click.echo(str(len(hog)))
    elif behaviour == "sleep":
        time.sleep(60)
    elif behaviour == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif behaviour == "write_then_fail":
        Path(file).with_suffix(".partial").write_text("half")
        click.echo(f"error: {file}: failed", err=True)
        sys.exit(1)
    elif behaviour == "diag":
        os.write(2, b"HDF5-DIAG: Error detected in HDF5 (1.14.0) thread 0:\n")
        click.echo(f"error: {file}: cannot read", err=True)
        sys.exit(1)
    else:
        raise click.BadParameter(behaviour)


if __name__ == "__main__":
    main()
