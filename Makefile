# Thin aliases for the commands in README.md.
.PHONY: run test lint bench fuzz

run:
	cargo run --release -- serve

test:
	scripts/test.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

bench:
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh
