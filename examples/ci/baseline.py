"""Keep the last release's perftest report where the next pipeline run finds it.

    python baseline.py get URI DEST     # copy URI to DEST; exit 0 and no file when URI is absent
    python baseline.py put SRC URI      # copy SRC to URI (after a promotion)
    python baseline.py bucket URI       # create the bucket of an s3:// URI if it is missing

URI is ``s3://bucket/key`` (boto3 with the standard AWS configuration: profiles, OIDC web
identity, ``AWS_ENDPOINT_URL`` for a stand-in such as moto) or a local path. Copied from
mlops' examples/ci; it needs only boto3, which mlops installs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


def get(uri: str, dest: Path) -> bool:
    """Copy ``uri`` to ``dest``; False (and no file) when there is no report there yet."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not uri.startswith("s3://"):
        if not Path(uri).is_file():
            return False
        shutil.copyfile(uri, dest)
        return True
    from botocore.exceptions import ClientError

    bucket, key = _split(uri)
    try:
        _s3().download_file(bucket, key, str(dest))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NoSuchBucket"}:
            dest.unlink(missing_ok=True)
            return False
        raise
    return True


def put(src: Path, uri: str) -> None:
    if not uri.startswith("s3://"):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, uri)
        return
    bucket, key = _split(uri)
    _s3().upload_file(str(src), bucket, key)


def bucket(uri: str) -> None:
    if not uri.startswith("s3://"):
        return
    from botocore.exceptions import ClientError

    client = _s3()
    name, _ = _split(uri)
    try:
        client.head_bucket(Bucket=name)
    except ClientError:
        client.create_bucket(Bucket=name)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "get":
        found = get(argv[1], Path(argv[2]))
        print("found" if found else "none")
        return 0
    if len(argv) == 3 and argv[0] == "put":
        put(Path(argv[1]), argv[2])
        return 0
    if len(argv) == 2 and argv[0] == "bucket":
        bucket(argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
