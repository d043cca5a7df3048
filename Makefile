# The two commands: `make run` starts the demo service, `make test` runs the whole suite.
# Both install what they need first (tools/setup.sh, idempotent).
.PHONY: setup run test lint bench

setup:
	@bash tools/setup.sh

run: setup
	bondwatch run $(ARGS)

test: setup
	python3 -m ruff check .
	python3 -m pytest -ra $(ARGS)

bench: setup
	python3 bench/replay_speed.py
