"""`python -m automateos`: the same as the `automateos` command."""

from automateos._cli.main import main

raise SystemExit(main())
