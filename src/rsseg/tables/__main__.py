"""``python -m rsseg.tables PATH...``: the ``rsseg tables`` command (:mod:`rsseg.tables.command`)."""

import sys

from rsseg.tables.command import main

if __name__ == "__main__":
    sys.exit(main())
