# The two commands of the README, and what they build on.
.PHONY: demo test setup

demo: setup
	cargo run --quiet --bin ferry -- demo

test:
	scripts/test

setup:
	scripts/setup

bench: setup
	scripts/bench
