"""`python -m demo`: runs the demo (demo/app.py) with the command line's arguments."""

from __future__ import annotations

from demo.app import main

if __name__ == "__main__":
    main()
