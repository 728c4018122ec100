"""A local S3 stand-in for the storage tests: moto's server mode, run as a separate process
on a free port and stopped by its pid, with one fresh bucket per test."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.evalserver.services import free_port, stop_pid, wait_for_port

#: Any credentials do for moto; real ones would come from the operator's environment.
KEY_ID = "vl12-test-key"
SECRET = "vl12-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def env(self, bucket: str, prefix: str = "vl12") -> dict[str, str]:
        """What a host of the server needs: the storage URL, the endpoint, credentials."""
        return {
            "VL12_STORAGE_URL": f"s3://{bucket}/{prefix}",
            "VL12_S3_ENDPOINT_URL": self.endpoint,
            "VL12_S3_REGION": REGION,
            "VL12_S3_ACCESS_KEY_ID": KEY_ID,
            "VL12_S3_SECRET_ACCESS_KEY": SECRET,
        }

    def client(self) -> object:
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        )

    def new_bucket(self) -> str:
        name = f"vl12-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@contextmanager
def moto_server() -> Iterator[S3Server]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        stop_pid(proc)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server
