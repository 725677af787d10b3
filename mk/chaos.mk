# Faults: real PostgreSQL, Redis and services killed, frozen and restarted for real, each
# scenario printing one line of figures. See docs/guarantees.md (## Faults). Linux only (/proc,
# PR_SET_PDEATHSIG). `make test` skips tests/chaos; this runs them (3-7 minutes here).

CHAOS_PYTEST ?= -q -p no:cacheprovider

.PHONY: chaos

chaos: $(STAMP) ## kill Redis, stop and freeze PostgreSQL, kill `make up`: check what survives, print figures
	AUTOMATEOS_CHAOS=1 $(PY) -m pytest tests/chaos $(CHAOS_PYTEST)
