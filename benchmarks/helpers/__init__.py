"""What the benchmark scripts share (timing, tables, the JSON with the machine; how the peers are loaded); not scripts."""
