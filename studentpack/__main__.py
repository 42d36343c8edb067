import sys

from studentpack.cli import main

sys.exit(main())
