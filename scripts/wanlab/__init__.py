"""torchwan WAN lab: emulated wide-area networks of N hosts in network namespaces.

Library use:  from scripts.wanlab import Lab;  lab = Lab.up("smoke"); ...; lab.down()
CLI:          python3 -m scripts.wanlab --help   (see docs/wan-lab.md)
"""

from .errors import LabError, LabUnavailable
from .lab import Lab
from .requirements import missing, require
from .scenario import Scenario, ScenarioError, load

__all__ = ["Lab", "LabError", "LabUnavailable", "Scenario", "ScenarioError", "load", "missing",
           "require"]
