# The two commands of the README, and what they build on.
.PHONY: demo test setup

demo: setup
	cargo run --quiet -p ferry-tests --bin demo

test:
	scripts/test

setup:
	scripts/setup
