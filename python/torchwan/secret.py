"""The job secret: create one, and find the one a member should use.

``python -m torchwan.secret FILE`` (or ``torchwan-coordinator --make-secret FILE``) writes a new
secret, readable only by its owner; copy it to every node of the job and point the coordinator at it
with ``--secret-file`` and the members with ``TORCHWAN_SECRET_FILE`` or
``torchwan.Options(secret_file=...)``. Only its fingerprint is ever printed or logged.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from . import _elastic
from .options import Options

ENV_VAR = "TORCHWAN_SECRET_FILE"


def create_secret(path: str | os.PathLike[str]) -> str:
    """Writes a new random job secret to ``path`` (mode 0600; an existing file is never
    overwritten) and returns its fingerprint."""
    return _elastic.create_secret(os.fspath(path))


def secret_fingerprint(path: str | os.PathLike[str]) -> str:
    """The fingerprint of the secret in ``path``: safe to log, identifies the secret."""
    return _elastic.secret_fingerprint(os.fspath(path))


def resolve_secret_file(
    explicit: Optional[str] = None, options: Optional[Options] = None
) -> Optional[str]:
    """The secret file a member uses: ``explicit``, else ``options.secret_file``, else
    ``$TORCHWAN_SECRET_FILE``; ``None`` when there is none (the job then runs unauthenticated)."""
    for candidate in (explicit, options.secret_file if options else None, os.environ.get(ENV_VAR)):
        if candidate:
            return os.fspath(candidate)
    return None


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m torchwan.secret FILE", file=sys.stderr)
        return 2
    try:
        fingerprint = create_secret(args[0])
    except RuntimeError as error:
        print(f"torchwan.secret: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote a new job secret to {args[0]} (fingerprint {fingerprint}); copy it, mode 0600, to "
        f"every node and use --secret-file {args[0]} / {ENV_VAR}={args[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
