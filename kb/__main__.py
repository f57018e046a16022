"""The ``kb`` command.

``kb index`` is first offered to a service serving the same index (kb.resident), before the
command line library, pydantic and the model are imported: importing them takes longer than
the service needs to re-index a one-article edit.
"""

from __future__ import annotations

import sys


def main() -> None:
    from kb.resident import hand_over

    status = hand_over(sys.argv[1:])
    if status is not None:
        sys.exit(status)
    from kb.cli import app

    app()


if __name__ == "__main__":
    main()
