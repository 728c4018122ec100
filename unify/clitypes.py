"""Click parameter types shared by the ``unify`` and ``evalserver`` commands.

Task names are checked when a command line is parsed, not when the CLI module is imported:
the list comes from ``unify.tasks.all_tasks()``, which also loads plug-in tasks, and a
broken plug-in must give its one-line error inside the command's error handling rather
than a traceback at import time.
"""

from __future__ import annotations

from typing import Any

import click

from unify.errors import Vl12Error
from unify.paths import os_error_message
from unify.tasks import task_names


class TaskName(click.ParamType):
    """One task name of the TaskSpecs (built-in and plug-in)."""

    name = "task"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "TASK"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        known = task_names()
        if value not in known:
            self.fail(f"{value!r} is not a task; tasks: {', '.join(known)}", param, ctx)
        return str(value)


class Vl12Group(click.Group):
    """Turns our errors into one message on stderr and their exit code, never a traceback.

    An ``OSError`` that no path check foresaw (a disk that fills up, a folder removed
    during a build) is a data error too: one line naming the path, exit 1.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Vl12Error as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            click.echo(f"error: {os_error_message(exc)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was written", err=True)
            ctx.exit(130)
