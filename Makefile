# The commands of the README, and what they build on.
.PHONY: demo test lint setup

demo: setup
	cargo run --quiet --bin ferry -- demo

test:
	scripts/test

lint:
	scripts/lint

setup:
	scripts/setup

bench: setup
	scripts/bench
