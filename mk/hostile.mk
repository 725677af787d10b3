# Hostile input: the schemathesis sweep over every service's OpenAPI (also part of `make test`).

.PHONY: fuzz-api

fuzz-api: $(STAMP) ## schemathesis over every service's OpenAPI, logged in: no 5xx (AUTOMATEOS_FUZZ_EXAMPLES=200 for a deeper run)
	$(PY) -m pytest tests/hostile/test_fuzz_api.py $(PYTEST_ARGS)
