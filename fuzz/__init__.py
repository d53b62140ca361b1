"""Fuzz harness for the edge-ser runtime (host side, like `benchmarks/`; not installed with the package).

`python -m fuzz TARGET --seconds N` runs one target, `python -m fuzz all --seconds N` all of them;
`fuzz.targets` says what each one checks, docs/fuzzing.md how to run them and what the last long
run found. Each target takes bytes and either returns (the input was handled, or refused with one
of the runtime's documented errors, `edge_ser.errors.EdgeSerError`) or raises: any other exception
type, a disagreement between two paths that must agree, a crash, a hang or a memory blow-up is a
finding.
"""
