import sys

from ruuhka.cli import main

sys.exit(main())
