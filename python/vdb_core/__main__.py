import sys

from vdb_core.cli import main

sys.exit(main())
