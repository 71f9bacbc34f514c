"""Backend options: ``dist.init_process_group("wan", pg_options=torchwan.Options(...))``.

Every field left as ``None`` falls back to the ``TORCHWAN_<FIELD>`` environment variable and then
to the built-in default, so unmodified scripts can be tuned from the shell.
"""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass
class Options:
    #: Data-plane transport: "ucx" (default) or "zmq".       TORCHWAN_TRANSPORT
    transport: Optional[str] = None
    #: Parallel TCP connections per peer; large messages are striped over them.  TORCHWAN_LANES
    lanes: Optional[int] = None
    #: Messages below this size travel whole on one lane.    TORCHWAN_STRIPE_MIN_BYTES
    stripe_min_bytes: Optional[int] = None
    #: Largest single wire message.                          TORCHWAN_CHUNK_BYTES
    chunk_bytes: Optional[int] = None
    #: Address peers reach this rank at (default: first non-loopback IPv4). TORCHWAN_HOST
    host: Optional[str] = None
    #: Limit on connecting the group, in ms.                 TORCHWAN_CONNECT_TIMEOUT_MS
    connect_timeout_ms: Optional[int] = None
    #: Silence after which a peer counts as lost, in ms.     TORCHWAN_PEER_TIMEOUT_MS
    peer_timeout_ms: Optional[int] = None

    def transport_fields(self) -> dict[str, str]:
        """The fields that were set explicitly, as text for the native layer."""
        return {
            field.name: str(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None
        }
