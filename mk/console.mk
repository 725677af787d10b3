# The web console: its browser tests drive Debian's chromium with Playwright (Playwright's own
# browser download is not reachable everywhere). See docs/console.md.

.PHONY: browser-tools console-test console-screenshots

browser-tools: ## install Debian's chromium for the console's browser tests when missing (apt, needs root)
	@if command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "browser-tools: run as root, or: sudo apt-get install chromium" >&2; \
		exit 1; \
	fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null

console-test: $(STAMP) browser-tools ## only the console's tests: browser (tests/console) and HTTP side
	$(PY) -m pytest tests/console tests/services/workflows/test_console.py tests/services/workflows/test_activity.py tests/services/workflows/test_run_listing.py -q -p no:cacheprovider

console-screenshots: $(STAMP) browser-tools ## redraw docs/console/*.png (light, dark, 360 px) from a live stack
	AUTOMATEOS_CONSOLE_SHOTS=docs/console $(PY) -m pytest tests/console/test_screenshots.py -q -p no:cacheprovider
