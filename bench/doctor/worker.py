"""One rank of the doctor benchmark: `torchwan.doctor` as torchrun would start it."""

import sys

from torchwan.doctor import main

sys.exit(main())
