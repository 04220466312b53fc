"""`python -m bdemu` is `bdemu`."""
from .cli import main

raise SystemExit(main())
