# The commands of the README, and what they build on.
.PHONY: demo test lint setup install

demo: setup
	cargo run --quiet --bin ferry -- demo

test:
	scripts/test

lint:
	scripts/lint

install:
	cargo install --locked --path cli

setup:
	scripts/setup

bench: setup
	scripts/bench
