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
    #: This rank's region label (ranks with equal labels share a region; allreduce then reduces
    #: inside regions and sends little over the links between them). Set on every rank or none.
    #:                                                       TORCHWAN_REGION
    region: Optional[str] = None
    #: How regions are found: "auto" (labels if set, else clustered from round-trip times measured
    #: at group creation), "regions" (labels required) or "flat" (no hierarchy).  TORCHWAN_TOPOLOGY
    topology: Optional[str] = None
    #: Codec for floating-point SUM/AVG allreduces of at least 64 KiB: "none" (default), "fp16",
    #: "bf16", "int8" or "fp8". Lossy (each element quantised at most twice), bit-identical on
    #: every rank; integers and other ops stay exact. Same on every rank. TORCHWAN_COMPRESSION
    compression: Optional[str] = None
    #: Bytes of collective temporaries (staging, compressed payloads) kept between calls instead
    #: of being allocated, page-faulted and freed on every call; 0 keeps none. Default 256 MiB.
    #:                                                       TORCHWAN_SCRATCH_CACHE_BYTES
    scratch_cache_bytes: Optional[int] = None

    #: File holding the job secret (``torchwan-coordinator --make-secret FILE``); members need it to
    #: join a coordinator started with ``--secret-file``.    TORCHWAN_SECRET_FILE
    secret_file: Optional[str] = None
    #: Names the job: data connections of another job are refused, and the rank at fault named.
    #:                                                       TORCHWAN_JOB_ID
    job_id: Optional[str] = None
    #: Authenticated encryption of data-plane messages: "none" (default), "aes-256-gcm",
    #: "chacha20-poly1305", or "on" (AES-256-GCM where every rank's CPU has AES instructions,
    #: else ChaCha20-Poly1305). Needs ``secret_file``; same on every rank.  TORCHWAN_ENCRYPTION
    encryption: Optional[str] = None

    def transport_fields(self) -> dict[str, str]:
        """The fields that were set explicitly, as text for the native layer."""
        return {
            field.name: str(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None
        }
