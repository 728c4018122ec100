"""The command-line client of the server's JSON API (``evalserver submit``, ``status``,
``leaderboard``): the server and token come from ``--url``/``--token`` or ``VL12_URL`` /
``VL12_TOKEN``.

Exit codes follow ``evalserver score``: 0 accepted (with ``--wait``: scored), 1 rejected,
failed or the server refused (the report or its message is printed), 2 usage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from tqdm import tqdm

from evalserver.text import printable

__all__ = ["API", "ApiError", "Client", "ProgressReader", "format_leaderboard", "format_status"]

API = "/api/v1"
FINAL = ("scored", "failed", "cancelled")


class ApiError(Exception):
    """The server answered with an error (or could not be reached): a message for the user,
    and the report of a rejected file when there is one."""

    def __init__(self, message: str, status: int | None = None, report: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.report = report


class ProgressReader:
    """A file object that advances a progress bar as httpx streams it (the upload is never
    held in memory); ``fileno`` lets httpx send a Content-Length."""

    def __init__(self, raw: IO[bytes], bar: tqdm) -> None:
        self._raw = raw
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self._bar.update(len(chunk))
        return chunk

    def fileno(self) -> int:
        return self._raw.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


@dataclass
class Client:
    url: str
    token: str | None = None
    timeout: float = 600.0

    def _client(self) -> httpx.Client:
        headers = {} if self.token is None else {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url.rstrip("/") + API, headers=headers,
                            timeout=httpx.Timeout(self.timeout, connect=10.0))

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, dict):  # a rejected file: the validator's report
            raise ApiError(str(detail.get("message", "rejected")), response.status_code, detail)
        if isinstance(detail, list):  # FastAPI's own request validation
            text = "; ".join(
                f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}" for d in detail
            )
            raise ApiError(f"HTTP {response.status_code}: {text}", response.status_code)
        message = detail if isinstance(detail, str) else response.text[:500]
        raise ApiError(f"HTTP {response.status_code}: {message}", response.status_code)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            with self._client() as client:
                return self._check(client.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise ApiError(f"cannot reach the server at {self.url}: {exc}") from None

    def submit(
        self, path: Path, task: str, phase: str | None = None, method: str = "",
        description: str = "", public: bool = True, progress: bool = True,
        benchmark: str | None = None,
    ) -> dict[str, Any]:
        """Upload ``path`` (streamed, with a progress bar on a terminal); the submission.
        ``benchmark``: a benchmark's name (default: the newest loaded)."""
        data = {"task": task, "method_name": method, "description": description,
                "public": str(public).lower()}
        if phase is not None:
            data["phase"] = phase
        if benchmark is not None:
            data["benchmark"] = benchmark
        size = path.stat().st_size
        with path.open("rb") as raw, tqdm(
            total=size, unit="B", unit_scale=True, unit_divisor=1024, desc="upload",
            disable=not progress, leave=False,
        ) as bar:
            files = {"file": (path.name, ProgressReader(raw, bar), "application/octet-stream")}
            return self._request("POST", "/submissions", data=data, files=files).json()

    def get(self, submission_id: str) -> dict[str, Any]:
        return self._request("GET", f"/submissions/{submission_id}").json()

    def wait(self, submission_id: str, poll_s: float = 1.0,
             timeout_s: float | None = None) -> dict[str, Any]:
        """Poll until the submission is final (or ``timeout_s`` passes: its last state)."""
        start = time.monotonic()
        while True:
            row = self.get(submission_id)
            if row["status"] in FINAL:
                return row
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                return row
            time.sleep(poll_s)
            poll_s = min(poll_s * 1.5, 10.0)

    def leaderboard(self, task: str, phase: str | None = None, csv: bool = False) -> Any:
        params = {"format": "csv" if csv else "json"}
        if phase is not None:
            params["phase"] = phase
        response = self._request("GET", f"/leaderboards/{task}", params=params)
        return response.text if csv else response.json()


def format_status(row: dict[str, Any]) -> str:
    """A few lines a person reads: what, where, status, metrics or error."""
    bench = row.get("benchmark") or {}
    lines = [
        f"submission {row['id']}: {row['status']}",
        f"  {row['task']}, phase {row['phase']}, benchmark {printable(str(bench.get('name')))} "
        f"v{bench.get('version')}; method {printable(row.get('method_name') or '-')}; "
        f"attempts {row.get('attempts', 0)}",
    ]
    if row.get("duplicate"):
        lines.append("  (this file was submitted before: the earlier submission)")
    if row.get("metrics"):
        lines.extend(
            f"  {name}: {'-' if value is None else f'{value:.4f}'}"
            for name, value in row["metrics"].items()
        )
        if row.get("scorer_name"):
            lines.append(f"  scored by {row['scorer_name']} {row.get('scorer_version')}")
    if row.get("error"):
        lines.append(f"  error: {printable(row['error'])}")
    return "\n".join(lines)


def format_leaderboard(board: dict[str, Any]) -> str:
    """The leaderboard as an aligned text table, columns in the task's declared order."""
    columns = board["columns"]
    header = ["rank", "team", "method", *(c["name"] for c in columns)]
    table = [header]
    for row in board["rows"]:
        values = []
        for column in columns:
            value = row["metrics"].get(column["name"])
            values.append("-" if value is None else f"{value:.{column['precision']}f}")
        method = printable(row["method_name"]) + (" (baseline)" if row.get("baseline") else "")
        table.append([str(row["rank"]), printable(row["team"]), method, *values])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    bench = board["benchmark"]
    title = (f"{board['task']}, phase {board['phase']} ({', '.join(board['splits'])}), "
             f"benchmark {bench['name']} v{bench['version']}")
    lines = [title] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                       for r in table]
    if not board["rows"]:
        lines.append("(no scored entries yet)")
    return "\n".join(lines)
