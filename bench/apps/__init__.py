"""The servers the benchmark runs: geworker's app and the peers' minimal equivalents."""
