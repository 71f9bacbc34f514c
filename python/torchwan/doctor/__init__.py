"""``torchwan doctor``: checks the network a "wan" job is about to run on.

    torchrun --nnodes=N --nproc-per-node=1 ... -m torchwan.doctor --json doctor.json
    python -m torchwan.doctor --local 3 --json doctor.json      # self-test on this machine

Per pair of ranks it measures the RTT, the bandwidth of a short bounded probe in each direction,
the retransmits during the probe and the rung of the connection ladder that connects them; per
host it reads the kernel's TCP settings. It prints the matrices and recommendations (socket
buffers, lanes, congestion control, regions, compression) and writes them as JSON and a PNG heat
map. See docs/doctor.md.
"""

from .advice import recommend
from .cli import main

__all__ = ["main", "recommend"]
