import sys

from clearance_tools.simulator.cli import main

sys.exit(main())
