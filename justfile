# Baton's everyday commands. `just ci` is what .ci/run does (minus the package installs).

default: test

# Start the server on its embedded defaults (data in ./baton-data).
serve:
    cargo run --release -p baton -- serve

# The test command from the README.
test:
    cargo test --workspace

fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# baton-proto and baton-assign must not depend on IO crates.
purity:
    #!/usr/bin/env bash
    set -euo pipefail
    for crate in baton-proto baton-assign; do
      if cargo tree -q -p "$crate" -e normal --prefix none | grep -Eq '^(tokio|hyper|axum|sled|openssl|rustls|sqlx) v'; then
        echo "$crate is not pure"; exit 1
      fi
    done

bench:
    cargo bench --workspace

doc:
    cargo doc --workspace --no-deps

ci:
    bash .ci/run
